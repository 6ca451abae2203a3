package initproc

import (
	"io"
	"net"
)

// PipeBoth copies a<->b until both directions end; fromB reads b (possibly
// through a buffer that already holds some of b's bytes). The in-sandbox
// forwarder and the host's egress proxy both relay connections with it.
func PipeBoth(a, b net.Conn, fromB io.Reader) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(b, a)
		closeWrite(b)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(a, fromB)
		closeWrite(a)
		done <- struct{}{}
	}()
	<-done
	<-done
}

// closeWrite half-closes c where it can, so the other side sees the end of
// this direction while the other still flows; else it closes c.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
