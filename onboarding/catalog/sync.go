package catalog

import (
	"context"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"cardata/policies/errs"
)

// UpsertSQL is one statement that makes catalog_keys match the catalog:
// inserts new keys, updates changed ones (and only those) and marks keys no
// longer in the file as retired (their ids stay referenced by history).
func (c *Catalog) UpsertSQL() string {
	var b strings.Builder
	b.WriteString("INSERT INTO catalog_keys (id, key, data_type, enum_values, unit, min_value, max_value, category,\n" +
		"    sensitivity, pushable, push_event, drivetrains, description_en, description_de, retired) VALUES\n")
	ids := make([]string, 0, len(c.keys))
	for i := range c.keys {
		k := &c.keys[i]
		if i > 0 {
			b.WriteString(",\n")
		}
		ids = append(ids, strconv.Itoa(int(k.ID)))
		b.WriteString("(")
		b.WriteString(strings.Join([]string{
			strconv.Itoa(int(k.ID)), lit(k.Name), lit(string(k.Type)), arr(k.Values), lit(k.Unit), num(k.Min), num(k.Max),
			lit(k.Category), lit(k.Sensitivity), strconv.FormatBool(k.Pushable), lit(k.PushEvent), arr(k.Drivetrains),
			lit(k.DescriptionEN), lit(k.DescriptionDE), "false",
		}, ", "))
		b.WriteString(")")
	}
	b.WriteString("\nON CONFLICT (id) DO UPDATE SET key = excluded.key, data_type = excluded.data_type,\n" +
		"    enum_values = excluded.enum_values, unit = excluded.unit, min_value = excluded.min_value,\n" +
		"    max_value = excluded.max_value, category = excluded.category, sensitivity = excluded.sensitivity,\n" +
		"    pushable = excluded.pushable, push_event = excluded.push_event, drivetrains = excluded.drivetrains,\n" +
		"    description_en = excluded.description_en, description_de = excluded.description_de, retired = false\n" +
		"WHERE (catalog_keys.key, catalog_keys.data_type, catalog_keys.enum_values, catalog_keys.unit,\n" +
		"       catalog_keys.min_value, catalog_keys.max_value, catalog_keys.category, catalog_keys.sensitivity,\n" +
		"       catalog_keys.pushable, catalog_keys.push_event, catalog_keys.drivetrains, catalog_keys.description_en,\n" +
		"       catalog_keys.description_de, catalog_keys.retired)\n" +
		"  IS DISTINCT FROM (excluded.key, excluded.data_type, excluded.enum_values, excluded.unit,\n" +
		"       excluded.min_value, excluded.max_value, excluded.category, excluded.sensitivity,\n" +
		"       excluded.pushable, excluded.push_event, excluded.drivetrains, excluded.description_en,\n" +
		"       excluded.description_de, excluded.retired);\n")
	b.WriteString("UPDATE catalog_keys SET retired = true WHERE NOT retired AND id NOT IN (" + strings.Join(ids, ", ") + ");\n")
	return b.String()
}

// SeedMigration is the goose migration that seeds catalog_keys from this
// catalog (app/db/migrations/00031_catalog_seed.sql is generated from it).
func (c *Catalog) SeedMigration() string {
	return "-- +goose Up\n" +
		"-- GENERATED from onboarding/catalog/catalog.json: do not edit by hand. Regenerate with\n" +
		"--   go test ./onboarding/catalog -run TestSeedMigration -update\n" +
		"-- Running binaries also bring the table up to their embedded file at boot (catalog.Sync).\n" +
		c.UpsertSQL() +
		"\n-- +goose Down\nDELETE FROM catalog_keys;\n"
}

// Sync brings catalog_keys up to the embedded catalog. It writes only rows
// that differ, so calling it at every boot is cheap.
func (c *Catalog) Sync(ctx context.Context, db *gorm.DB) error {
	return errs.Wrap(db.WithContext(ctx).Exec(c.UpsertSQL()).Error, "catalog sync")
}

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func arr(vs []string) string {
	if len(vs) == 0 {
		return "'{}'::text[]"
	}
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = lit(v)
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]"
}

func num(f *float64) string {
	if f == nil {
		return "NULL"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}
