package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/internal/setup"
)

func adminCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage operator credentials (local: needs the data directory)",
	}
	var name, out string
	creds := &cobra.Command{
		Use:   "credentials",
		Short: "Issue a new operator credential from the local CA (replaces the previous key)",
		Long: `credentials issues an X.509-SVID for /admin/<name> from the data directory's
CA. It is a local act: whoever can run it already holds the CA keys. The
previous key of that operator stops verifying at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := setup.Open(cmd.Context(), a.dataDir(), a.logger())
			if err != nil {
				return err
			}
			defer d.Close()
			if out == "" {
				out = d.Dir.Admin()
			}
			if err := d.IssueAdminCredential(cmd.Context(), name, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the credential of %s to %s\n", "/admin/"+name, out)
			return nil
		},
	}
	creds.Flags().StringVar(&name, "name", setup.DefaultAdmin, "operator name (/admin/<name>)")
	creds.Flags().StringVar(&out, "out", "", "directory to write to (default <data dir>/admin)")
	cmd.AddCommand(creds)
	return cmd
}
