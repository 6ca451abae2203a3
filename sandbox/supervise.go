package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// RestartPolicy says when a supervised server is started again.
type RestartPolicy struct {
	// MaxRestarts in a row before giving up (default 5). A run that lasted
	// ResetAfter resets the count.
	MaxRestarts int
	// MinBackoff and MaxBackoff bound the wait before a restart, which
	// doubles after each consecutive failure (defaults 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// ResetAfter is how long a run must last to count as healthy (default 1 min).
	ResetAfter time.Duration
}

func (r RestartPolicy) withDefaults() RestartPolicy {
	if r.MaxRestarts == 0 {
		r.MaxRestarts = 5
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = 200 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 30 * time.Second
	}
	if r.MaxBackoff < r.MinBackoff {
		r.MaxBackoff = r.MinBackoff
	}
	if r.ResetAfter <= 0 {
		r.ResetAfter = time.Minute
	}
	return r
}

// ErrGaveUp is returned by Supervisor.Next when the server kept failing.
var ErrGaveUp = errors.New("sandboxed server kept failing; not restarted")

// ErrStopped is returned by Supervisor.Next after Stop, after a containment
// kill, or once the supervisor's context has ended.
var ErrStopped = errors.New("sandboxed server stopped")

// Supervisor keeps one stdio server running in its sandbox for the gateway:
// it starts it, restarts it with backoff when it exits or crashes, never
// restarts it after a containment kill, a refused launch or Stop, and kills
// its whole process tree when its context ends.
type Supervisor struct {
	l      *Launcher
	spec   Spec
	pol    RestartPolicy
	ctx    context.Context
	cancel context.CancelFunc
	next   chan *Process

	mu      sync.Mutex
	current *Process
	exits   []Exit
	err     error
	done    chan struct{}
}

// Supervise starts spec as a stdio server (see StartStdio) and keeps it
// running under pol until ctx ends or Stop is called. Take each running
// instance with Next.
func (l *Launcher) Supervise(ctx context.Context, spec Spec, pol RestartPolicy) *Supervisor {
	ctx, cancel := context.WithCancel(ctx)
	s := &Supervisor{l: l, spec: spec, pol: pol.withDefaults(), ctx: ctx, cancel: cancel,
		next: make(chan *Process), done: make(chan struct{})}
	go s.run()
	return s
}

// Next returns the next running instance: the first one, then, after the
// previous one has ended, its replacement. It returns ErrGaveUp (wrapping
// the last launch error or exit) when the restart budget is spent, and
// ErrStopped after Stop or containment.
func (s *Supervisor) Next(ctx context.Context) (*Process, error) {
	select {
	case p := <-s.next:
		return p, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Current returns the running instance, or nil between instances.
func (s *Supervisor) Current() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Exits returns how every instance so far ended.
func (s *Supervisor) Exits() []Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exit(nil), s.exits...)
}

// Contain kills the running instance as a containment action and stops
// supervising: a contained server is not restarted.
func (s *Supervisor) Contain(detail string) {
	if p := s.Current(); p != nil {
		p.Kill(ExitContained, detail)
	}
	s.stop(ErrStopped)
	<-s.done
}

// Stop ends the running instance (SIGTERM, then SIGKILL after grace) and
// stops supervising.
func (s *Supervisor) Stop(grace time.Duration) {
	if p := s.Current(); p != nil {
		p.Stop(grace)
	}
	s.stop(ErrStopped)
	<-s.done
}

// Done is closed when the supervisor has stopped for good.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

func (s *Supervisor) stop(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *Supervisor) run() {
	defer close(s.done)
	defer s.cancel()
	failures := 0
	backoff := s.pol.MinBackoff
	for {
		p, err := s.l.StartStdio(s.ctx, s.spec)
		if err != nil {
			if errors.Is(err, ErrRefused) || s.ctx.Err() != nil {
				s.stop(fmt.Errorf("%w: %w", ErrStopped, err))
				return
			}
			failures++
			s.l.logger.Warn("sandboxed server failed to start", "profile", s.spec.Name, "err", err, "failures", failures)
			if failures > s.pol.MaxRestarts {
				s.stop(fmt.Errorf("%w: %w", ErrGaveUp, err))
				return
			}
		} else {
			s.mu.Lock()
			s.current = p
			s.mu.Unlock()
			select {
			case s.next <- p:
			case <-p.Done():
			case <-s.ctx.Done():
				p.Kill(ExitSessionEnd, "supervisor stopped")
			}
			ex := p.Wait()
			s.mu.Lock()
			s.current = nil
			s.exits = append(s.exits, ex)
			s.mu.Unlock()
			switch ex.Reason {
			case ExitContained:
				s.stop(fmt.Errorf("%w: contained: %s", ErrStopped, ex.Detail))
				return
			case ExitSessionEnd:
				s.stop(ErrStopped)
				return
			}
			if s.ctx.Err() != nil {
				s.stop(ErrStopped)
				return
			}
			if ex.Duration >= s.pol.ResetAfter {
				failures, backoff = 0, s.pol.MinBackoff
			}
			failures++
			s.l.logger.Warn("sandboxed server ended", "sandbox", p.ID(), "exit", ex.String(), "failures", failures)
			if failures > s.pol.MaxRestarts {
				s.stop(fmt.Errorf("%w: last exit: %s", ErrGaveUp, ex))
				return
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.stop(ErrStopped)
			return
		}
		backoff = min(backoff*2, s.pol.MaxBackoff)
	}
}
