//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

// MaybeInit does nothing where sandboxes are not supported.
func MaybeInit() {}

type processPlatform struct{}

func (l *Launcher) initPlatform() {}

func (l *Launcher) start(context.Context, Spec, bool, bool) (*Process, error) {
	return nil, errors.New("sandboxes need Linux")
}

func (p *Process) killTree()  {}
func (p *Process) terminate() {}

type cgroupMounts struct{}

type spareKey struct{ uid, gid int }

type spareSlot struct{}

// Close does nothing where sandboxes are not supported.
func (l *Launcher) Close() error { return nil }
