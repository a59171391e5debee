package store

import (
	"slices"
)

// Columns returns the columns Insert fills in table, in the order it fills
// them (a copy), or nil for a table Insert does not write. Readers that
// scan whole rows into the row types (JobRow, ...) select these columns, so
// each table's column list is written once.
func Columns(table string) []string { return slices.Clone(tableColumns[table]) }
