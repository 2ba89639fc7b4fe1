package webhooks

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
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

// Secrets is the key that seals secrets at rest: SECRETS_KEY of one app
// instance, handed to the services that seal or open (Service.Secrets, the
// provider API's stored answers). Two apps in one process with different
// keys do not see each other's. A nil *Secrets is no key: secrets are
// stored in clear, and a sealed one cannot be read.
type Secrets struct{ aead cipher.AEAD }

// NewSecrets is the key of a 32-byte SECRETS_KEY; nil for none.
func NewSecrets(key []byte) (*Secrets, error) {
	if key == nil {
		return nil, nil
	}
	aead, err := NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Secrets{aead: aead}, nil
}

// AEAD is the key's AES-256-GCM, nil without a key. Other secrets at rest
// (stored API answers that carry a signing secret) are sealed under it with
// SealBytes, with their own purpose.
func (k *Secrets) AEAD() cipher.AEAD {
	if k == nil {
		return nil
	}
	return k.aead
}

// seal is a signing secret as stored: sealed under k, or in clear without a key.
func (k *Secrets) seal(plain string) (string, error) { return k.SealString(plain, secretPurpose) }

// open is a stored signing secret in clear (one stored in clear as is).
func (k *Secrets) open(raw string) (string, error) { return k.OpenString(raw, secretPurpose) }

// SealString is a secret of the given purpose as stored: "enc1:" +
// base64(nonce || ciphertext) under k, or in clear without a key (so a
// nil *Secrets works). Other modules' recoverable secrets (a provider's
// OpenID client secret) are sealed with it under a purpose of their own.
func (k *Secrets) SealString(plain, purpose string) (string, error) {
	if k == nil || plain == "" || strings.HasPrefix(plain, sealedPrefix) {
		return plain, nil
	}
	out, err := SealBytes(k.aead, []byte(plain), purpose)
	if err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// OpenString is a secret SealString stored for purpose, in clear (one
// stored in clear as is).
func (k *Secrets) OpenString(raw, purpose string) (string, error) {
	if !strings.HasPrefix(raw, sealedPrefix) {
		return raw, nil
	}
	if k == nil {
		return "", fmt.Errorf("%s is encrypted but SECRETS_KEY is not set", purpose)
	}
	b, err := base64.RawStdEncoding.DecodeString(raw[len(sealedPrefix):])
	if err != nil || len(b) < k.aead.NonceSize() {
		return "", fmt.Errorf("%s: malformed ciphertext", purpose)
	}
	plain, err := OpenBytes(k.aead, b, purpose)
	if err != nil {
		return "", fmt.Errorf("%s: cannot decrypt (wrong SECRETS_KEY?)", purpose)
	}
	return string(plain), nil
}

type secretsCtxKey struct{}

// WithSecrets returns ctx carrying k: the statements run with that context
// seal and open SealedSecret columns under k. The Service does it for its
// own statements (Service.db).
func WithSecrets(ctx context.Context, k *Secrets) context.Context {
	return context.WithValue(ctx, secretsCtxKey{}, k)
}

func secretsFrom(ctx context.Context) *Secrets {
	if ctx == nil {
		return nil
	}
	k, _ := ctx.Value(secretsCtxKey{}).(*Secrets)
	return k
}

// db is s.DB for ctx with the service's key for its SealedSecret columns.
func (s *Service) db(ctx context.Context) *gorm.DB {
	return s.DB.WithContext(WithSecrets(ctx, s.Secrets))
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

// SealedSecret is a signing secret: in memory always in clear, in the
// database sealed under the key of the statement's context (WithSecrets),
// by the "sealed" serializer (the Endpoint.Secret column's tag).
type SealedSecret string

func init() { schema.RegisterSerializer("sealed", sealedSerializer{}) }

type sealedSerializer struct{}

// Scan opens a stored secret (a secret stored in clear reads as is).
func (sealedSerializer) Scan(ctx context.Context, field *schema.Field, dst reflect.Value, dbValue any) error {
	var raw string
	switch x := dbValue.(type) {
	case string:
		raw = x
	case []byte:
		raw = string(x)
	case nil:
	default:
		return fmt.Errorf("webhook secret: unexpected %T", dbValue)
	}
	plain, err := secretsFrom(ctx).open(raw)
	if err != nil {
		return err
	}
	field.ReflectValueOf(ctx, dst).SetString(plain)
	return nil
}

// Value seals the secret for storage.
func (sealedSerializer) Value(ctx context.Context, _ *schema.Field, _ reflect.Value, fieldValue any) (any, error) {
	var plain string
	switch x := fieldValue.(type) {
	case SealedSecret:
		plain = string(x)
	case *SealedSecret:
		if x != nil {
			plain = string(*x)
		}
	case string:
		plain = x
	default:
		return nil, fmt.Errorf("webhook secret: unexpected %T", fieldValue)
	}
	return secretsFrom(ctx).seal(plain)
}

// SealStoredSecrets encrypts under k the signing secrets still stored in
// clear (endpoints created before a key was set). It returns how many it
// sealed; without a key, none.
func SealStoredSecrets(ctx context.Context, db *gorm.DB, k *Secrets) (int, error) {
	if k == nil {
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
		v, err := k.seal(r.Secret)
		if err != nil {
			return 0, err
		}
		if err := db.WithContext(ctx).Exec(`UPDATE webhook_endpoints SET secret = ? WHERE id = ? AND secret = ?`, v, r.ID, r.Secret).Error; err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}
