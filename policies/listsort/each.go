package listsort

import "gorm.io/gorm"

// Each runs q and calls fn with each row scanned into a T, one row at a
// time (an export of a long list never holds it in memory). fn's error
// stops the loop and is returned.
func Each[T any](q *gorm.DB, fn func(*T) error) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v T
		if err := q.ScanRows(rows, &v); err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
	}
	return rows.Err()
}
