package config

// Sandbox configures the sandbox package. It is filled in by the issue that builds it.
type Sandbox struct{}

func (c Sandbox) validate() error { return nil }
