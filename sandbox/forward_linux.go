package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// startForwarders runs, in the init, the loopback listeners that lead to the
// host's egress proxy over its Unix socket: one speaking the HTTP proxy
// protocol (for clients that honour HTTP(S)_PROXY), and one per allowed name
// and port on the loopback address /etc/hosts gives that name (for clients
// that ignore proxy variables). The proxy decides; the forwarders only carry.
func startForwarders(p *proxySpec) error {
	ctx := context.Background()
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.Port))))
	if err != nil {
		return fmt.Errorf("listening for the proxy forwarder: %w", err)
	}
	go serveForward(ln, p.Socket, "")
	for _, f := range p.Forwards {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(f.Addr, strconv.Itoa(int(f.Port))))
		if err != nil {
			return fmt.Errorf("listening for %s:%d: %w", f.Host, f.Port, err)
		}
		go serveForward(ln, p.Socket, net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))))
	}
	return nil
}

// serveForward accepts connections and carries each to the proxy socket.
// With target set, it first asks the proxy for a CONNECT tunnel to it.
func serveForward(ln net.Listener, socket, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		go forwardOne(c, socket, target)
	}
}

func forwardOne(c net.Conn, socket, target string) {
	defer c.Close()
	up, err := net.DialTimeout("unix", socket, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	var fromUp io.Reader = up
	if target != "" {
		if _, err := fmt.Fprintf(up, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
			return
		}
		br := bufio.NewReader(up)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		fromUp = br
	}
	pipeBoth(c, up, fromUp)
}
