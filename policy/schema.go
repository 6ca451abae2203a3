package policy

import (
	_ "embed"
	"fmt"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// SchemaFile is the name under which the schema is reported in errors.
const SchemaFile = "warden.cedarschema"

//go:embed schema.cedarschema
var schemaSource []byte

// Schema returns Warden's Cedar schema in Cedar's human-readable schema
// format: the entity types, actions and context every policy is validated
// against.
func Schema() []byte {
	return append([]byte(nil), schemaSource...)
}

// resolveSchema parses and resolves the embedded schema. It is cheap next to
// compiling a policy set, so every compilation resolves it afresh rather than
// sharing a parsed copy.
func resolveSchema() (*resolved.Schema, error) {
	var s schema.Schema
	s.SetFilename(SchemaFile)
	if err := s.UnmarshalCedar(schemaSource); err != nil {
		return nil, fmt.Errorf("parsing the Cedar schema: %w", err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("resolving the Cedar schema: %w", err)
	}
	return r, nil
}
