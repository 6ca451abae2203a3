package initproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// startForwarders runs, in the init, the loopback listeners that lead to the
// host's egress proxy over its Unix socket: one speaking the HTTP proxy
// protocol (for clients that honour HTTP(S)_PROXY), and one per allowed name
// and port on the loopback address /etc/hosts gives that name (for clients
// that ignore proxy variables). The proxy decides; the forwarders only carry.
func startForwarders(p *Proxy) error {
	ctx := context.Background()
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.Port))))
	if err != nil {
		return fmt.Errorf("listening for the proxy Forwarder: %w", err)
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
		// The proxy's answer: a status line and headers, no body. Parsed by
		// hand so that the init does not link net/http.
		br := bufio.NewReader(up)
		status, err := br.ReadString('\n')
		if err != nil || len(status) < 12 || !strings.HasPrefix(status, "HTTP/1.") || status[9:12] != "200" {
			return
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil || len(line) > 8<<10 {
				return
			}
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		fromUp = br
	}
	PipeBoth(c, up, fromUp)
}
