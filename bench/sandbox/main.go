// Command sandbox measures what Warden's sandbox adds to starting a process
// and to a stdio round trip, side by side with a bare exec and with
// bubblewrap, in one run:
//
//	go run ./bench/sandbox [-n 50] [-calls 1000] [-warden PATH]
//
// Start-up is /bin/true, run -n times per variant, interleaved; the figure
// is the median (and p90) wall time from start to reaped. The sandbox is
// Warden's default profile at the Advanced tier (every mechanism in force:
// namespaces, pivot_root, Landlock, seccomp, cgroup limits), cold (the init
// started for the launch) and with Options.Prewarm (an init started ahead of
// need takes the launch; the next is made in the background). bubblewrap
// gets a comparable set of namespaces and a read-only root, without
// Landlock, seccomp or cgroups. With -warden, the warden binary is timed end
// to end too (`warden sandbox run -- /bin/true` against `warden version`).
// The round trip is one line through /bin/cat as a stdio server, direct and
// sandboxed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

func main() {
	sandbox.MaybeInit() // this binary is also the sandbox's init
	n := flag.Int("n", 50, "start-ups per variant")
	calls := flag.Int("calls", 1000, "stdio round trips per variant")
	warden := flag.String("warden", "", "path of a warden binary to time end to end")
	flag.Parse()
	if err := run(*n, *calls, *warden); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type variant struct {
	name string
	run  func() error
	d    []time.Duration
}

func run(n, calls int, warden string) error {
	ctx := context.Background()
	l, err := sandbox.New(sandbox.Options{Tier: tier.Advanced, Sink: events.Discard{}})
	if err != nil {
		return err
	}
	warm, err := sandbox.New(sandbox.Options{Tier: tier.Advanced, Sink: events.Discard{}, Prewarm: true})
	if err != nil {
		return err
	}
	defer warm.Close()
	runTrue := func(l *sandbox.Launcher) error {
		ex, _, err := l.Run(ctx, sandbox.Spec{Profile: sandbox.DefaultProfile(), Args: []string{"/bin/true"}})
		if err != nil {
			return err
		}
		if !ex.Success() {
			return fmt.Errorf("sandboxed /bin/true: %v", ex)
		}
		return nil
	}
	vs := []*variant{
		{name: "direct exec", run: func() error { return exec.Command("/bin/true").Run() }},
		{name: "warden sandbox (library, cold)", run: func() error { return runTrue(l) }},
		{name: "warden sandbox (library, prewarmed init)", run: func() error { return runTrue(warm) }},
	}
	if bwrap, err := exec.LookPath("bwrap"); err == nil {
		args := []string{"--unshare-all", "--die-with-parent", "--new-session",
			"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
			"--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
			"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/workspace", "--chdir", "/workspace",
			"--cap-drop", "ALL", "/bin/true"}
		if os.Geteuid() == 0 {
			// As root, bubblewrap would keep the sandbox's root mapped to
			// the host's; map to nobody as Warden does.
			args = append([]string{"--unshare-user", "--uid", "0", "--gid", "0"}, args...)
		}
		vs = append(vs, &variant{name: "bubblewrap", run: func() error { return exec.Command(bwrap, args...).Run() }})
	} else {
		fmt.Fprintln(os.Stderr, "bench: bwrap not found (scripts/test-deps.sh installs it); skipping it")
	}
	if warden != "" {
		vs = append(vs,
			&variant{name: "warden version (CLI baseline)", run: func() error { return exec.Command(warden, "version").Run() }},
			&variant{name: "warden sandbox run (CLI)", run: func() error {
				return exec.Command(warden, "--dir", os.TempDir()+"/warden-bench-nodir", "sandbox", "run", "--", "/bin/true").Run()
			}},
		)
	}
	// One warm-up each, then n interleaved rounds.
	for _, v := range vs {
		if err := v.run(); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	for i := 0; i < n; i++ {
		for j := range vs {
			v := vs[(i+j)%len(vs)]
			t := time.Now()
			if err := v.run(); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			v.d = append(v.d, time.Since(t))
		}
	}
	fmt.Printf("Start-up of /bin/true, %d runs each, interleaved:\n\n", n)
	fmt.Println("| variant | median | p90 | added over direct (median) |")
	fmt.Println("|---|---|---|---|")
	base := median(vs[0].d)
	for _, v := range vs {
		fmt.Printf("| %s | %s | %s | %s |\n", v.name, ms(median(v.d)), ms(pct(v.d, 0.9)), ms(median(v.d)-base))
	}

	direct, err := roundTrips(calls, func() (io.WriteCloser, io.ReadCloser, func(), error) {
		cmd := exec.Command("/bin/cat")
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, nil, err
		}
		return in, out, func() { in.Close(); cmd.Wait() }, nil
	})
	if err != nil {
		return err
	}
	boxed, err := roundTrips(calls, func() (io.WriteCloser, io.ReadCloser, func(), error) {
		p, err := l.StartStdio(ctx, sandbox.Spec{Profile: sandbox.DefaultProfile(), Args: []string{"/bin/cat"}})
		if err != nil {
			return nil, nil, nil, err
		}
		return p.Stdin(), p.Stdout(), func() { p.Stdin().Close(); p.Wait() }, nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("\nStdio round trip (one 100-byte line through /bin/cat), %d calls each:\n\n", calls)
	fmt.Println("| variant | median | p99 |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| direct | %s | %s |\n", us(median(direct)), us(pct(direct, 0.99)))
	fmt.Printf("| sandboxed | %s | %s |\n", us(median(boxed)), us(pct(boxed, 0.99)))
	return nil
}

func roundTrips(n int, start func() (io.WriteCloser, io.ReadCloser, func(), error)) ([]time.Duration, error) {
	in, out, stop, err := start()
	if err != nil {
		return nil, err
	}
	defer stop()
	br := bufio.NewReader(out)
	line := make([]byte, 99)
	for i := range line {
		line[i] = 'x'
	}
	line = append(line, '\n')
	var ds []time.Duration
	for i := 0; i < n+10; i++ {
		t := time.Now()
		if _, err := in.Write(line); err != nil {
			return nil, err
		}
		if _, err := br.ReadBytes('\n'); err != nil {
			return nil, err
		}
		if i >= 10 {
			ds = append(ds, time.Since(t))
		}
	}
	return ds, nil
}

func median(d []time.Duration) time.Duration { return pct(d, 0.5) }

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }
