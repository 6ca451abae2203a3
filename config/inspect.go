package config

// Inspect configures the inspect package. It is filled in by the issue that builds it.
type Inspect struct{}

func (c Inspect) validate() error { return nil }
