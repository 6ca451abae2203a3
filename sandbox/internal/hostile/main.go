// Command hostile is the sandbox's escape-test adversary: each mode tries
// one thing a confined tool must not be able to do and prints, one line per
// attempt, "<name> OK" when the attempt succeeded or "<name> ERR <error>"
// when it failed. The tests in package sandbox build it, run it inside
// sandboxes and assert on those lines. It uses only the standard library so
// that it builds anywhere the tests run.
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func res(name string, err error) {
	if err != nil {
		fmt.Printf("%s ERR %v\n", name, err)
		return
	}
	fmt.Printf("%s OK\n", name)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile MODE [ARGS]")
		os.Exit(2)
	}
	args := os.Args[2:]
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch os.Args[1] {
	case "read": // read PATH...
		for _, p := range args {
			_, err := os.ReadFile(p)
			res("read:"+p, err)
		}
	case "write": // write PATH...
		for _, p := range args {
			res("write:"+p, os.WriteFile(p, []byte("hostile"), 0o644))
		}
	case "stat":
		for _, p := range args {
			_, err := os.Stat(p)
			res("stat:"+p, err)
		}
	case "fds": // list open descriptors
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			res("fds", err)
			return
		}
		var open []string
		for _, e := range ents {
			open = append(open, e.Name())
		}
		fmt.Printf("fds %s\n", strings.Join(open, ","))
	case "fdescape": // try every descriptor from 3 to 255 as a way out
		for fd := 3; fd < 256; fd++ {
			var st syscall.Stat_t
			if syscall.Fstat(fd, &st) != nil {
				continue
			}
			nfd, err := syscall.Openat(fd, "etc/shadow", syscall.O_RDONLY, 0)
			if err == nil {
				syscall.Close(nfd)
			}
			res(fmt.Sprintf("fdescape:%d", fd), err)
			target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			fmt.Printf("fdopen %d %s\n", fd, target)
		}
		fmt.Println("fdescape done")
	case "uid":
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			res("uidmap", err)
		} else {
			fmt.Printf("uidmap %s\n", strings.Join(strings.Fields(string(b)), " "))
		}
		fmt.Printf("uid %d euid %d\n", os.Getuid(), os.Geteuid())
	case "setuid": // setuid PATH: plant a setuid binary
		p := arg(0)
		err := os.WriteFile(p, []byte("#!/bin/sh\nid\n"), 0o755)
		if err == nil {
			err = os.Chmod(p, 0o4755|os.ModeSetuid)
		}
		res("setuid:"+p, err)
		res("setuid1", syscall.Setuid(1)) // needs CAP_SETUID
		res("chown", os.Chown(p, 1, 1))   // needs CAP_CHOWN
	case "procmem": // read the init's memory and descriptors
		f, err := os.Open("/proc/1/mem")
		if err == nil {
			buf := make([]byte, 16)
			_, err = f.ReadAt(buf, 0x400000)
			f.Close()
			if errors.Is(err, syscall.EIO) {
				err = nil // opened: that alone is the escape
			}
		}
		res("procmem", err)
		// The init's descriptors: its status pipe would let a tool forge
		// its own exit report.
		for _, fd := range []string{"3", "4"} {
			f, err := os.OpenFile("/proc/1/fd/"+fd, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			res("procfd"+fd, err)
		}
		_, err = os.ReadFile("/proc/1/environ")
		res("procenviron", err)
		_, err = os.Readlink("/proc/1/root")
		res("procroot", err)
	case "mptcp":
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 262)
		if err == nil {
			syscall.Close(fd)
		}
		res("mptcp", err)
		fd, err = syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM, 262)
		if err == nil {
			syscall.Close(fd)
		}
		res("mptcp6", err)
	case "int80":
		if !haveInt80 {
			fmt.Println("int80 unsupported")
			return
		}
		fmt.Println("int80 calling")
		r := int80(20, 0, 0, 0) // getpid on i386
		fmt.Printf("int80 OK returned %d\n", r)
	case "connect": // connect HOST:PORT...
		for _, a := range args {
			c, err := net.DialTimeout("tcp", a, 3*time.Second)
			if err == nil {
				c.Close()
			}
			res("connect:"+a, err)
		}
	case "udp": // udp HOST:PORT: send one datagram
		c, err := net.Dial("udp", arg(0))
		if err == nil {
			_, err = c.Write([]byte("exfil"))
			c.Close()
		}
		res("udp:"+arg(0), err)
	case "dns":
		for _, n := range args {
			_, err := net.LookupHost(n)
			res("dns:"+n, err)
		}
	case "proxyget", "directget": // GET URL through the proxy variables, or ignoring them
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
		if os.Args[1] == "directget" {
			tr.Proxy = nil
		}
		cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, u := range args {
			resp, err := cl.Get(u)
			if err != nil {
				res("get:"+u, err)
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				res("get:"+u, fmt.Errorf("status %d reason %s", resp.StatusCode, resp.Header.Get("X-Warden-Reason")))
				continue
			}
			fmt.Printf("get:%s OK %s\n", u, strings.TrimSpace(string(body)))
		}
	case "tls": // tls HOST:PORT SNI: TLS through a CONNECT tunnel with the given SNI
		err := tlsViaProxy(arg(0), arg(1))
		res("tls:"+arg(1), err)
	case "ptrace":
		for _, a := range args {
			pid, _ := strconv.Atoi(a)
			err := syscall.PtraceAttach(pid)
			res("ptrace:"+a, err)
		}
	case "mount":
		res("mount", syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
		res("umount", syscall.Unmount("/proc", syscall.MNT_DETACH))
	case "unshare":
		res("unshare-user", syscall.Unshare(syscall.CLONE_NEWUSER))
		res("unshare-ns", syscall.Unshare(syscall.CLONE_NEWNS))
		_, _, e := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.CLONE_NEWUSER|syscall.SIGCHLD), 0, 0)
		res("clone-newuser", errnoErr(e))
		res("clone3", clone3())
	case "setns":
		f, err := os.Open("/proc/1/ns/net")
		if err == nil {
			_, _, e := syscall.RawSyscall(308 /* setns on amd64 */, f.Fd(), 0, 0)
			err = errnoErr(e)
			f.Close()
		}
		res("setns", err)
	case "tiocsti": // push characters into the terminal on stdin
		c := byte('X')
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		res("tiocsti", errnoErr(e))
		// The same request with garbage in the upper 32 bits, which the
		// kernel ignores and a careless filter compares.
		_, _, e = syscall.Syscall(syscall.SYS_IOCTL, 0, uintptr(0xdead000000000000|syscall.TIOCSTI), uintptr(unsafe.Pointer(&c)))
		res("tiocsti-high", errnoErr(e))
	case "forkbomb": // start sleeping children until refused
		n := 0
		var lastErr error
		for n < 100000 {
			cmd := exec.Command("/bin/sleep", "67")
			if err := cmd.Start(); err != nil {
				lastErr = err
				break
			}
			n++
		}
		fmt.Printf("forkbomb started %d err %v\n", n, lastErr)
	case "membomb": // allocate and touch memory until stopped
		var hold [][]byte
		for i := 1; i <= 256; i++ {
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			hold = append(hold, b)
			fmt.Printf("membomb %d MiB\n", i*16)
		}
		fmt.Println("membomb OK survived 4 GiB")
	case "rlimit": // raise each soft limit to its hard limit, by both calls
		for _, l := range []struct {
			name string
			res  int
		}{{"data", syscall.RLIMIT_DATA}, {"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}} {
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(l.res, &lim); err != nil {
				res("getrlimit:"+l.name, err)
				continue
			}
			fmt.Printf("limit:%s %d %d\n", l.name, lim.Cur, lim.Max)
			lim.Cur = lim.Max
			_, _, e := syscall.RawSyscall(syscall.SYS_SETRLIMIT, uintptr(l.res), uintptr(unsafe.Pointer(&lim)), 0)
			res("setrlimit:"+l.name, errnoErr(e))
			_, _, e = syscall.RawSyscall6(syscall.SYS_PRLIMIT64, 0, uintptr(l.res), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
			res("prlimit:"+l.name, errnoErr(e))
		}
	case "kill1":
		res("kill1", syscall.Kill(1, syscall.SIGKILL))
	case "sleep":
		d, _ := time.ParseDuration(arg(0))
		time.Sleep(d)
	case "echo": // a line-oriented stdio server
		buf := make([]byte, 64<<10)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				os.Stdout.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	case "exit":
		code, _ := strconv.Atoi(arg(0))
		os.Exit(code)
	default:
		fmt.Fprintln(os.Stderr, "hostile: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// clone3 with CLONE_NEWUSER: a filter cannot read clone3's flags, so it
// must refuse clone3 outright.
func clone3() error {
	type cloneArgs struct {
		flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
	}
	a := cloneArgs{flags: syscall.CLONE_NEWUSER, exitSignal: uint64(syscall.SIGCHLD)}
	r, _, e := syscall.RawSyscall(435, uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a), 0)
	if e != 0 {
		return e
	}
	if r == 0 {
		os.Exit(0) // the child
	}
	return nil
}

func tlsViaProxy(target, sni string) error {
	proxy := os.Getenv("HTTPS_PROXY")
	if proxy == "" {
		return errors.New("no HTTPS_PROXY")
	}
	pu := strings.TrimPrefix(proxy, "http://")
	c, err := net.DialTimeout("tcp", pu, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.Contains(string(buf[:n]), " 200 ") {
		return fmt.Errorf("proxy said %q", strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	return tc.Handshake()
}
