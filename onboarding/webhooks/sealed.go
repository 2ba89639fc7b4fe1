package webhooks

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"gorm.io/gorm"
)

// A signing secret must stay recoverable (we sign every push with it and the
// provider may look it up), so unlike passwords and client secrets it cannot
// be hashed. It is encrypted at rest instead: AES-256-GCM under SECRETS_KEY,
// stored as "enc1:" + base64(nonce || ciphertext). In memory it is always
// the plain "whsec_..." value. Without a key (development, tests) it is
// stored in clear; the configuration requires the key whenever PUBLIC_URL
// is not a loopback address.

const sealedPrefix = "enc1:"

// secretPurpose is the additional data of a sealed signing secret.
const secretPurpose = "webhook-secret"

var secretsAEAD atomic.Pointer[cipher.AEAD]

// SetSecretsKey sets the 32-byte key that seals signing secrets (nil: none).
func SetSecretsKey(key []byte) error {
	if key == nil {
		secretsAEAD.Store(nil)
		return nil
	}
	aead, err := NewAEAD(key)
	if err != nil {
		return err
	}
	secretsAEAD.Store(&aead)
	return nil
}

// NewAEAD is AES-256-GCM under a 32-byte key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the secrets key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SecretsAEAD is the AEAD of SECRETS_KEY, nil when no key is set. Other
// secrets at rest (stored API answers that carry a signing secret) are
// sealed under the same key with SealBytes, with their own purpose.
func SecretsAEAD() cipher.AEAD {
	if p := secretsAEAD.Load(); p != nil {
		return *p
	}
	return nil
}

// SealBytes encrypts plain as nonce || ciphertext. purpose is the
// additional data: a ciphertext made for one purpose never opens as
// another, so a stored answer cannot be passed off as a signing secret.
func SealBytes(aead cipher.AEAD, plain []byte, purpose string) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(purpose)), nil
}

// OpenBytes decrypts what SealBytes made for the same purpose.
func OpenBytes(aead cipher.AEAD, sealed []byte, purpose string) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("malformed ciphertext")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(purpose))
}

// SealedSecret is a signing secret, encrypted when written to the database
// and decrypted when read.
type SealedSecret string

// Value encrypts the secret for storage.
func (s SealedSecret) Value() (driver.Value, error) {
	p := secretsAEAD.Load()
	if p == nil || s == "" || strings.HasPrefix(string(s), sealedPrefix) {
		return string(s), nil
	}
	out, err := SealBytes(*p, []byte(s), secretPurpose)
	if err != nil {
		return nil, err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Scan decrypts a stored secret (a secret stored in clear reads as is).
func (s *SealedSecret) Scan(v any) error {
	var raw string
	switch x := v.(type) {
	case string:
		raw = x
	case []byte:
		raw = string(x)
	case nil:
		*s = ""
		return nil
	default:
		return fmt.Errorf("webhook secret: unexpected %T", v)
	}
	if !strings.HasPrefix(raw, sealedPrefix) {
		*s = SealedSecret(raw)
		return nil
	}
	p := secretsAEAD.Load()
	if p == nil {
		return errors.New("webhook secret is encrypted but SECRETS_KEY is not set")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw[len(sealedPrefix):])
	if err != nil || len(b) < (*p).NonceSize() {
		return errors.New("webhook secret: malformed ciphertext")
	}
	plain, err := OpenBytes(*p, b, secretPurpose)
	if err != nil {
		return errors.New("webhook secret: cannot decrypt (wrong SECRETS_KEY?)")
	}
	*s = SealedSecret(plain)
	return nil
}

// SealStoredSecrets encrypts the signing secrets still stored in clear
// (endpoints created before a key was set). It returns how many it sealed.
func SealStoredSecrets(ctx context.Context, db *gorm.DB) (int, error) {
	if secretsAEAD.Load() == nil {
		return 0, nil
	}
	var rows []struct {
		ID     int64
		Secret string
	}
	if err := db.WithContext(ctx).Raw(`SELECT id, secret FROM webhook_endpoints WHERE secret NOT LIKE 'enc1:%'`).Scan(&rows).Error; err != nil {
		return 0, err
	}
	for _, r := range rows {
		v, err := SealedSecret(r.Secret).Value()
		if err != nil {
			return 0, err
		}
		if err := db.WithContext(ctx).Exec(`UPDATE webhook_endpoints SET secret = ? WHERE id = ? AND secret = ?`, v, r.ID, r.Secret).Error; err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}
