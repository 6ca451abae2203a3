package redteam

import (
	"embed"
	"fmt"
)

// builtin holds the built-in packs: per pack, tasks.yaml (the environment
// and the user tasks with their grants) and goals.yaml (the attacker's
// side), written separately and committed in that order.
//
//go:embed packs
var builtin embed.FS

// Builtin returns the built-in packs.
func Builtin() ([]*Pack, error) {
	files, err := LoadFS(builtin, "packs")
	if err != nil {
		return nil, fmt.Errorf("reading the built-in packs: %w", err)
	}
	return ParseFiles(files)
}
