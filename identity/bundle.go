package identity

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/store"
)

// BundleRefreshHint tells bundle consumers how often to re-fetch.
const BundleRefreshHint = 5 * time.Minute

var bundleMigrations = []string{
	`CREATE TABLE trust_bundle (
		id       INTEGER PRIMARY KEY CHECK (id = 1),
		sequence INTEGER NOT NULL,
		digest   TEXT NOT NULL
	)`,
}

// NewBundle assembles the trust domain's SPIFFE bundle: the X.509 roots and
// the JWT-SVID keys, with a sequence number that increases whenever their
// content changes (persisted in db) and a refresh hint. Served as JSON, it is
// the JWKS document of the SPIFFE Trust Domain and Bundle specification, so
// go-spiffe verifiers and SPIRE federation can consume it.
func NewBundle(ctx context.Context, db *store.DB, td spiffeid.TrustDomain, roots []*x509.Certificate, jwtKeys map[string]crypto.PublicKey) (*spiffebundle.Bundle, error) {
	b := spiffebundle.New(td)
	b.SetX509Authorities(roots)
	b.SetJWTAuthorities(jwtKeys)
	b.SetRefreshHint(BundleRefreshHint)
	seq, err := bundleSequence(ctx, db, bundleDigest(roots, jwtKeys))
	if err != nil {
		return nil, err
	}
	b.SetSequenceNumber(seq)
	return b, nil
}

func bundleDigest(roots []*x509.Certificate, jwtKeys map[string]crypto.PublicKey) string {
	h := sha256.New()
	for _, r := range roots {
		h.Write(r.Raw)
	}
	kids := make([]string, 0, len(jwtKeys))
	for k := range jwtKeys {
		kids = append(kids, k)
	}
	sort.Strings(kids)
	for _, k := range kids {
		der, _ := x509.MarshalPKIXPublicKey(jwtKeys[k])
		h.Write([]byte(k))
		h.Write(der)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func bundleSequence(ctx context.Context, db *store.DB, digest string) (uint64, error) {
	if err := db.Migrate(ctx, "trust_bundle", bundleMigrations); err != nil {
		return 0, err
	}
	var seq uint64
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var have string
		err := tx.QueryRowContext(ctx, `SELECT sequence, digest FROM trust_bundle WHERE id = 1`).Scan(&seq, &have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			seq = 1
			_, err = tx.ExecContext(ctx, `INSERT INTO trust_bundle (id, sequence, digest) VALUES (1, ?, ?)`, seq, digest)
			return err
		case err != nil:
			return err
		case have != digest:
			seq++
			_, err = tx.ExecContext(ctx, `UPDATE trust_bundle SET sequence = ?, digest = ? WHERE id = 1`, seq, digest)
			return err
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recording trust bundle sequence: %w", err)
	}
	return seq, nil
}
