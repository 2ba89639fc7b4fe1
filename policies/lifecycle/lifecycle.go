// Package lifecycle holds what the transition tables of the life cycles
// (providers, container versions, consents, tickets) share: each module
// keeps its table in a package variable and hands out rows only as copies,
// through a clone that copies the row's slices, so no caller can change the
// table. Each module's own rules (who may act, from which state) stay in
// the module.
package lifecycle

// All returns a copy of the whole table.
func All[T any](table []T, clone func(T) T) []T {
	out := make([]T, len(table))
	for i, t := range table {
		out[i] = clone(t)
	}
	return out
}

// Find returns a copy of the first row match accepts, and whether there
// was one.
func Find[T any](table []T, match func(T) bool, clone func(T) T) (T, bool) {
	for _, t := range table {
		if match(t) {
			return clone(t), true
		}
	}
	var zero T
	return zero, false
}

// Filter returns copies of the rows keep accepts, in table order (nil when
// there is none).
func Filter[T any](table []T, keep func(T) bool, clone func(T) T) []T {
	var out []T
	for _, t := range table {
		if keep(t) {
			out = append(out, clone(t))
		}
	}
	return out
}
