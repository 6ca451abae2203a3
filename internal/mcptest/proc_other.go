//go:build !unix

package mcptest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

func setProcessGroup(*exec.Cmd) {}

// stopGroup kills cmd (process groups are a unix notion) and waits for done.
func stopGroup(cmd *exec.Cmd, done <-chan struct{}, _ time.Duration) error {
	if cmd.Process == nil {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %d: %w", cmd.Process.Pid, err)
	}
	<-done
	return nil
}
