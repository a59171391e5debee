package main

import (
	"errors"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// PluginID is the ClickHouse data source plugin's type.
const PluginID = "grafana-clickhouse-datasource"

// DatasourceUID is the data source deploy/grafana/provisioning provisions;
// every panel and variable names it.
const DatasourceUID = "drover-clickhouse"

// Query formats of the plugin (its backend's sqlutil.FormatQueryOption).
const (
	FormatTimeSeries = 0
	FormatTable      = 1
)

// Query types of the plugin's editor (QueryType in its src/types/sql.ts).
const (
	QueryTypeTimeSeries = "timeSeries"
	QueryTypeTable      = "table"
)

// Query is a raw-SQL query of the ClickHouse data source: the SDK has no
// query type for that plugin, so this is the part of its query model
// Drover uses (the SQL editor's fields). It implements the SDK's
// variants.Dataquery, so panels take it as any other target.
type Query struct {
	RefID      string                `json:"refId"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	// EditorType is always "sql": the plugin's builder mode is not used.
	EditorType string `json:"editorType"`
	QueryType  string `json:"queryType"`
	// Format is FormatTimeSeries or FormatTable.
	Format int    `json:"format"`
	RawSQL string `json:"rawSql"`
}

// ImplementsDataqueryVariant marks Query as a data query.
func (Query) ImplementsDataqueryVariant() {}

// DataqueryType is the plugin's id.
func (Query) DataqueryType() string { return PluginID }

// Validate rejects a query without SQL or with a format it does not know.
func (q Query) Validate() error {
	var errs []error
	if q.RawSQL == "" {
		errs = append(errs, errors.New("rawSql: empty"))
	}
	if q.Format != FormatTimeSeries && q.Format != FormatTable {
		errs = append(errs, errors.New("format: want 0 (time series) or 1 (table)"))
	}
	return errors.Join(errs...)
}

// Equals compares two queries field by field.
func (q Query) Equals(other variants.Dataquery) bool {
	o, ok := other.(Query)
	if !ok {
		return false
	}
	sameDS := (q.Datasource == nil) == (o.Datasource == nil)
	if sameDS && q.Datasource != nil {
		sameDS = str(q.Datasource.Type) == str(o.Datasource.Type) && str(q.Datasource.Uid) == str(o.Datasource.Uid)
	}
	return sameDS && q.RefID == o.RefID && q.EditorType == o.EditorType && q.QueryType == o.QueryType &&
		q.Format == o.Format && q.RawSQL == o.RawSQL
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// QueryBuilder builds a Query for the SDK's panel builders (WithTarget).
type QueryBuilder struct{ q Query }

// SQL starts a query on the provisioned ClickHouse data source: a table
// unless TimeSeries is called.
func SQL(rawSQL string) *QueryBuilder {
	return &QueryBuilder{q: Query{RefID: "A", Datasource: datasource(), EditorType: "sql",
		QueryType: QueryTypeTable, Format: FormatTable, RawSQL: rawSQL}}
}

// TimeSeries makes the query return a time series (a time column first).
func (b *QueryBuilder) TimeSeries() *QueryBuilder {
	b.q.QueryType, b.q.Format = QueryTypeTimeSeries, FormatTimeSeries
	return b
}

// RefID sets the query's reference id (default "A").
func (b *QueryBuilder) RefID(id string) *QueryBuilder {
	b.q.RefID = id
	return b
}

// Build returns the query, or why it is not valid.
func (b *QueryBuilder) Build() (variants.Dataquery, error) {
	if err := b.q.Validate(); err != nil {
		// The SDK's panel builders take a target's error as BuildErrors.
		return nil, cog.MakeBuildErrors("Query", err)
	}
	return b.q, nil
}

// datasource is a reference to the provisioned data source.
func datasource() *common.DataSourceRef {
	t, uid := PluginID, DatasourceUID
	return &common.DataSourceRef{Type: &t, Uid: &uid}
}
