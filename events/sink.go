package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Sink receives events. Emit returns only once the sink has taken the event as
// far as it promises to (a JSONL file: written to the OS; the audit log in
// sync mode: durable). A caller whose action must not happen unrecorded treats
// an error from Emit as a reason to refuse the action.
type Sink interface {
	Emit(ctx context.Context, e Event) error
}

// JSONL appends one JSON object per line to a file. It is the foundation's
// record; the audit log replaces it where tamper evidence is needed.
type JSONL struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
}

// OpenJSONL opens (creating if needed, mode 0600) the file at path for appending.
func OpenJSONL(path string) (*JSONL, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening event log: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	return &JSONL{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// Emit writes the event as one line and hands it to the OS before returning.
func (j *JSONL) Emit(_ context.Context, e Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("event log is closed")
	}
	if err := j.enc.Encode(&e); err != nil {
		return fmt.Errorf("writing event: %w", err)
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("writing event: %w", err)
	}
	return nil
}

// Close flushes, syncs and closes the file.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.w.Flush(), j.f.Sync(), j.f.Close())
	j.f = nil
	return err
}

// Multi emits to every sink in order and returns the first error, after
// trying them all: one broken subscriber does not starve the others.
type Multi []Sink

// Emit implements Sink.
func (m Multi) Emit(ctx context.Context, e Event) error {
	var first error
	for _, s := range m {
		if err := s.Emit(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Discard drops every event. It exists for benchmarks that measure the cost of
// everything but recording; nothing in a running Warden uses it.
type Discard struct{}

// Emit implements Sink.
func (Discard) Emit(context.Context, Event) error { return nil }

// Recorder keeps events in memory; tests use it to assert what was emitted.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	// Err, when set, is returned by Emit (and the event is not kept), to test
	// what callers do when recording fails.
	Err error
}

// Emit implements Sink.
func (r *Recorder) Emit(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.events = append(r.events, e)
	return nil
}

// Events returns a copy of what was recorded.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Find returns the recorded events whose reason code (Warden.Reason or
// StatusCode) equals code.
func (r *Recorder) Find(code string) []Event {
	var out []Event
	for _, e := range r.Events() {
		if e.StatusCode == code || (e.Warden != nil && e.Warden.Reason == code) {
			out = append(out, e)
		}
	}
	return out
}
