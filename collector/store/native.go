package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
)

// The metric tables (resources and the five point tables) take nearly every
// row the collector writes. Their INSERTs go through ch-go, the columnar
// client under clickhouse-go (ClickHouse's documentation recommends it for
// insert-heavy clients): each column is a typed buffer, a LowCardinality
// column builds its dictionary with a map[string]int, and an array is
// appended as a slice, where clickhouse-go's row-oriented columns box every
// value into an interface and look it up through reflection. The buffers
// are reused from one insert to the next. The other tables, a few rows a
// minute, keep clickhouse-go's batch API.

// nativeBlockRows is how many rows go into one block of an INSERT. The
// server squashes the blocks of one INSERT into parts as large as before
// (min_insert_block_size_rows), so this only bounds the client's buffers:
// every table's columns keep the capacity of a block (LowCardinality ones
// a string header per row), and 65536 rows held about 45 MB more than
// 16384 as fast as the collector ingests (issue 18). A variable for the
// tests.
var nativeBlockRows = 16384

// native holds a ch-go connection to the addresses of the clickhouse-go
// options the Store was built with (dialled in order, on first use), and the
// tables' column buffers. Both are reused from one InsertBatches call to the
// next, which take turns. An error other than a server exception closes the
// connection (its state is unknown); the next call dials again.
type native struct {
	opts     []ch.Options  // one per address
	lifetime time.Duration // a connection older than this is closed before use (ConnMaxLifetime)

	mu       sync.Mutex // one InsertBatches at a time owns the client and the blocks
	client   *ch.Client
	dialled  time.Time
	lastUsed time.Time
	blocks   map[string]any
	closed   bool
}

// pingIdle is how long a connection may sit unused before it is pinged
// first: the server closes idle connections (idle_connection_timeout), and
// a batch should not fail, and wait for a retry, on a connection that was
// already gone.
var pingIdle = 30 * time.Second

// newNative takes o's database for the connection, as clickhouse-go does;
// the INSERTs name their tables with the Store's database. (A handshake
// naming a database that does not exist yet, before the schema is applied
// on this node, is an error; the embedded engine has aborted on the second
// one.)
func newNative(o *clickhouse.Options) *native {
	base := ch.Options{
		Database:    o.Auth.Database,
		User:        o.Auth.Username,
		Password:    o.Auth.Password,
		TLS:         o.TLS,
		DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout,
		ClientName:  "drover-collector",
	}
	if base.ReadTimeout <= 0 { // clickhouse-go's default
		base.ReadTimeout = 5 * time.Minute
	}
	if base.DialTimeout <= 0 {
		base.DialTimeout = 10 * time.Second
	}
	if o.Compression != nil {
		switch o.Compression.Method {
		case clickhouse.CompressionLZ4:
			base.Compression = ch.CompressionLZ4
		case clickhouse.CompressionZSTD:
			base.Compression = ch.CompressionZSTD
		}
	}
	for k, v := range o.Settings {
		base.Settings = append(base.Settings, ch.Setting{Key: k, Value: fmt.Sprint(v)})
	}
	slices.SortFunc(base.Settings, func(a, b ch.Setting) int { return strings.Compare(a.Key, b.Key) })
	n := &native{blocks: map[string]any{}, lifetime: o.ConnMaxLifetime}
	if n.lifetime <= 0 { // clickhouse-go's default
		n.lifetime = time.Hour
	}
	for _, addr := range o.Addr {
		opt := base
		opt.Address = addr
		n.opts = append(n.opts, opt)
	}
	return n
}

// dial connects to the first address that answers.
func (n *native) dial(ctx context.Context) (*ch.Client, error) {
	if len(n.opts) == 0 {
		return nil, errors.New("no ClickHouse address")
	}
	var errs []error
	for _, opt := range n.opts {
		c, err := ch.Dial(ctx, opt)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", opt.Address, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// closeClient closes the connection, if any. n.mu is held.
func (n *native) closeClient() {
	if n.client != nil {
		_ = n.client.Close()
		n.client = nil
	}
}

// close closes the connection for good: a later insert fails.
func (n *native) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeClient()
	n.closed = true
}

// do runs q on the connection, dialling it if needed. n.mu is held.
func (n *native) do(ctx context.Context, q ch.Query) error {
	if n.closed {
		return errStoreClosed
	}
	switch {
	case n.client == nil:
	case time.Since(n.dialled) > n.lifetime:
		n.closeClient() // dial again: after a failover, behind a load balancer
	case time.Since(n.lastUsed) > pingIdle && n.client.Ping(ctx) != nil:
		n.closeClient()
	}
	if n.client == nil || n.client.IsClosed() {
		cl, err := n.dial(ctx)
		if err != nil {
			return err
		}
		n.client, n.dialled = cl, time.Now()
	}
	err := n.client.Do(ctx, q)
	n.lastUsed = time.Now()
	if err != nil && !ch.IsException(err) {
		n.closeClient() // the connection's state is unknown
	}
	return err
}

var errStoreClosed = errors.New("store: closed")

// block is a reusable set of typed columns for one table. check, if set,
// vets every row before the INSERT starts (a value that the typed columns
// would carry but the server must not store), so that bad data fails the
// whole INSERT instead of a block in its middle.
type block[R any] struct {
	input proto.Input
	add   func(*R)
	check func(*R) error
}

// blockFor returns the table's block, made by mk on first use.
func blockFor[R any](n *native, table string, mk func() *block[R]) *block[R] {
	if b, ok := n.blocks[table].(*block[R]); ok {
		return b
	}
	b := mk()
	n.blocks[table] = b
	return b
}

// insertNative sends the rows of rows(b) for each b in bs, in order, as one
// INSERT into table in blocks of nativeBlockRows.
func insertNative[R any](ctx context.Context, n *native, db, table, token string, bs []*Batch, rows func(*Batch) []R, mk func() *block[R]) error {
	blk := blockFor(n, table, mk)
	if blk.check != nil {
		i := 0
		for _, b := range bs {
			rs := rows(b)
			for j := range rs {
				if err := blk.check(&rs[j]); err != nil {
					return fmt.Errorf("row %d: %w", i, err)
				}
				i++
			}
		}
	}
	bi, ri := 0, 0 // next row: rows(bs[bi])[ri]
	fill := func() int {
		blk.input.Reset()
		n := 0
		for n < nativeBlockRows && bi < len(bs) {
			rs := rows(bs[bi])
			for ; ri < len(rs) && n < nativeBlockRows; ri++ {
				blk.add(&rs[ri])
				n++
			}
			if ri == len(rs) {
				bi, ri = bi+1, 0
			}
		}
		return n
	}
	if fill() == 0 {
		return nil
	}
	q := ch.Query{
		Body:  "INSERT INTO " + db + "." + table + " " + blk.input.Columns() + " VALUES",
		Input: blk.input,
		OnInput: func(context.Context) error {
			if fill() == 0 {
				return io.EOF
			}
			return nil
		},
	}
	if token != "" {
		q.Settings = []ch.Setting{{Key: "insert_deduplication_token", Value: token + "/" + table, Important: true}}
	}
	err := n.do(ctx, q)
	// The columns keep their last block's values (strings of the rows)
	// until the next insert of this table: bounded by nativeBlockRows.
	blk.input.Reset()
	return err
}

// Column constructors, with the types of the migrations.

func lowCardinality() *proto.ColLowCardinality[string] {
	return proto.NewLowCardinality[string](new(proto.ColStr))
}

func dateTime64(p proto.Precision) *proto.ColDateTime64 {
	return new(proto.ColDateTime64).WithPrecision(p).WithLocation(time.UTC)
}

func attributesMap() *proto.ColMap[string, string] {
	return proto.NewMap[string, string](lowCardinality(), new(proto.ColStr))
}

// temporalityType is the Enum8 of the temporality columns. The column is
// sent as Int8 under this type, which the server stores as is, so
// checkTemporality keeps out what is not one of its values.
const temporalityType proto.ColumnType = "Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2)"

func checkTemporality(t Temporality) error {
	if t < TemporalityUnspecified || t > TemporalityCumulative {
		return fmt.Errorf("temporality %d is none of unspecified (0), delta (1), cumulative (2)", t)
	}
	return nil
}

// kvBuf holds one row's map entries while they are sorted by key.
type kvBuf []proto.KV[string, string]

// appendMap appends m with its keys in sorted order, as the clickhouse-go
// path stored them.
func (kv *kvBuf) appendMap(col *proto.ColMap[string, string], m map[string]string) {
	s := (*kv)[:0]
	for k, v := range m {
		s = append(s, proto.KV[string, string]{Key: k, Value: v})
	}
	if len(s) > 1 {
		slices.SortFunc(s, func(a, b proto.KV[string, string]) int { return strings.Compare(a.Key, b.Key) })
	}
	col.AppendKV(s)
	clear(s)
	*kv = s
}

func nullable(p *float64) proto.Nullable[float64] {
	if p == nil {
		return proto.Null[float64]()
	}
	return proto.NewNullable(*p)
}

// dt64 is t as a DateTime64 of precision 9 (nanoseconds). The zero
// time.Time, which no DateTime64 holds, is the Unix epoch, as in timeCol.
func dt64(t time.Time) proto.DateTime64 {
	if t.IsZero() {
		return 0
	}
	return proto.DateTime64(t.UnixNano())
}

// pointBlock holds the columns of Point (pointColumns).
type pointBlock struct {
	time, startTime                                           *proto.ColDateTime64
	service, host, agentID, model, modelVersion, metric, unit *proto.ColLowCardinality[string]
	attributes                                                *proto.ColMap[string, string]
	resourceID                                                proto.ColUInt64
	scopeName, scopeVersion                                   *proto.ColLowCardinality[string]
	kv                                                        kvBuf
}

func newPointBlock() *pointBlock {
	return &pointBlock{
		time: dateTime64(proto.PrecisionNano), startTime: dateTime64(proto.PrecisionNano),
		service: lowCardinality(), host: lowCardinality(), agentID: lowCardinality(), model: lowCardinality(),
		modelVersion: lowCardinality(), metric: lowCardinality(), unit: lowCardinality(),
		attributes: attributesMap(), scopeName: lowCardinality(), scopeVersion: lowCardinality(),
	}
}

func (b *pointBlock) input(extra ...proto.InputColumn) proto.Input {
	in := proto.Input{
		{Name: "time", Data: b.time}, {Name: "start_time", Data: b.startTime},
		{Name: "service", Data: b.service}, {Name: "host", Data: b.host}, {Name: "agent_id", Data: b.agentID},
		{Name: "model", Data: b.model}, {Name: "model_version", Data: b.modelVersion},
		{Name: "metric", Data: b.metric}, {Name: "unit", Data: b.unit},
		{Name: "attributes", Data: b.attributes}, {Name: "resource_id", Data: &b.resourceID},
		{Name: "scope_name", Data: b.scopeName}, {Name: "scope_version", Data: b.scopeVersion},
	}
	return append(in, extra...)
}

func (b *pointBlock) add(p *Point) {
	b.time.AppendRaw(dt64(p.Time))
	b.startTime.AppendRaw(dt64(p.StartTime))
	b.service.Append(p.Service)
	b.host.Append(p.Host)
	b.agentID.Append(p.AgentID)
	b.model.Append(p.Model)
	b.modelVersion.Append(p.ModelVersion)
	b.metric.Append(p.Metric)
	b.unit.Append(p.Unit)
	b.kv.appendMap(b.attributes, p.Attributes)
	b.resourceID.Append(p.ResourceID)
	b.scopeName.Append(p.ScopeName)
	b.scopeVersion.Append(p.ScopeVersion)
}

func resourceBlock() *block[ResourceRow] {
	var (
		id       proto.ColUInt64
		lastSeen = dateTime64(proto.PrecisionMilli)
		service  = lowCardinality()
		host     = lowCardinality()
		agentID  = lowCardinality()
		attrs    = attributesMap()
		kv       kvBuf
	)
	return &block[ResourceRow]{
		input: proto.Input{{Name: "resource_id", Data: &id}, {Name: "last_seen", Data: lastSeen},
			{Name: "service", Data: service}, {Name: "host", Data: host}, {Name: "agent_id", Data: agentID},
			{Name: "attributes", Data: attrs}},
		add: func(r *ResourceRow) {
			id.Append(r.ResourceID)
			if r.LastSeen.IsZero() {
				lastSeen.AppendRaw(0)
			} else {
				lastSeen.AppendRaw(proto.DateTime64(r.LastSeen.UnixMilli()))
			}
			service.Append(r.Service)
			host.Append(r.Host)
			agentID.Append(r.AgentID)
			kv.appendMap(attrs, r.Attributes)
		},
	}
}

func gaugeBlock() *block[GaugeRow] {
	p := newPointBlock()
	var value proto.ColFloat64
	return &block[GaugeRow]{
		input: p.input(proto.InputColumn{Name: "value", Data: &value}),
		add: func(r *GaugeRow) {
			p.add(&r.Point)
			value.Append(r.Value)
		},
	}
}

func sumBlock() *block[SumRow] {
	p := newPointBlock()
	var (
		temporality proto.ColInt8
		monotonic   proto.ColBool
		value       proto.ColFloat64
	)
	return &block[SumRow]{
		input: p.input(
			proto.InputColumn{Name: "temporality", Data: proto.Alias(&temporality, temporalityType)},
			proto.InputColumn{Name: "is_monotonic", Data: &monotonic},
			proto.InputColumn{Name: "value", Data: &value}),
		add: func(r *SumRow) {
			p.add(&r.Point)
			temporality.Append(int8(r.Temporality))
			monotonic.Append(r.IsMonotonic)
			value.Append(r.Value)
		},
		check: func(r *SumRow) error { return checkTemporality(r.Temporality) },
	}
}

// distBlock holds the columns that histograms and exponential histograms
// add after Point's, up to max.
type distBlock struct {
	pointBlock
	feature          *proto.ColLowCardinality[string]
	temporality      proto.ColInt8
	count            proto.ColUInt64
	sum              proto.ColFloat64
	minimum, maximum *proto.ColNullable[float64]
}

func newDistBlock() *distBlock {
	return &distBlock{pointBlock: *newPointBlock(), feature: lowCardinality(),
		minimum: proto.NewColNullable[float64](new(proto.ColFloat64)),
		maximum: proto.NewColNullable[float64](new(proto.ColFloat64))}
}

func (b *distBlock) input(extra ...proto.InputColumn) proto.Input {
	return b.pointBlock.input(append([]proto.InputColumn{
		{Name: "feature", Data: b.feature},
		{Name: "temporality", Data: proto.Alias(&b.temporality, temporalityType)},
		{Name: "count", Data: &b.count},
		{Name: "sum", Data: &b.sum},
		{Name: "min", Data: b.minimum},
		{Name: "max", Data: b.maximum},
	}, extra...)...)
}

func (b *distBlock) add(p *Point, feature string, t Temporality, count uint64, sum float64, minimum, maximum *float64) {
	b.pointBlock.add(p)
	b.feature.Append(feature)
	b.temporality.Append(int8(t))
	b.count.Append(count)
	b.sum.Append(sum)
	b.minimum.Append(nullable(minimum))
	b.maximum.Append(nullable(maximum))
}

func histogramBlock() *block[HistogramRow] {
	d := newDistBlock()
	bounds := proto.NewArray[float64](new(proto.ColFloat64))
	counts := proto.NewArray[uint64](new(proto.ColUInt64))
	return &block[HistogramRow]{
		input: d.input(
			proto.InputColumn{Name: "bounds", Data: bounds},
			proto.InputColumn{Name: "counts", Data: counts}),
		add: func(r *HistogramRow) {
			d.add(&r.Point, r.Feature, r.Temporality, r.Count, r.Sum, r.Min, r.Max)
			bounds.Append(r.Bounds)
			counts.Append(r.Counts)
		},
		check: func(r *HistogramRow) error { return checkTemporality(r.Temporality) },
	}
}

func expHistogramBlock() *block[ExpHistogramRow] {
	d := newDistBlock()
	var (
		scale          proto.ColInt32
		zeroCount      proto.ColUInt64
		zeroThreshold  proto.ColFloat64
		positiveOffset proto.ColInt32
		positiveCounts = proto.NewArray[uint64](new(proto.ColUInt64))
		negativeOffset proto.ColInt32
		negativeCounts = proto.NewArray[uint64](new(proto.ColUInt64))
	)
	return &block[ExpHistogramRow]{
		input: d.input(
			proto.InputColumn{Name: "scale", Data: &scale},
			proto.InputColumn{Name: "zero_count", Data: &zeroCount},
			proto.InputColumn{Name: "zero_threshold", Data: &zeroThreshold},
			proto.InputColumn{Name: "positive_offset", Data: &positiveOffset},
			proto.InputColumn{Name: "positive_bucket_counts", Data: positiveCounts},
			proto.InputColumn{Name: "negative_offset", Data: &negativeOffset},
			proto.InputColumn{Name: "negative_bucket_counts", Data: negativeCounts}),
		add: func(r *ExpHistogramRow) {
			d.add(&r.Point, r.Feature, r.Temporality, r.Count, r.Sum, r.Min, r.Max)
			scale.Append(r.Scale)
			zeroCount.Append(r.ZeroCount)
			zeroThreshold.Append(r.ZeroThreshold)
			positiveOffset.Append(r.PositiveOffset)
			positiveCounts.Append(r.PositiveBucketCounts)
			negativeOffset.Append(r.NegativeOffset)
			negativeCounts.Append(r.NegativeBucketCounts)
		},
		check: func(r *ExpHistogramRow) error { return checkTemporality(r.Temporality) },
	}
}

func summaryBlock() *block[SummaryRow] {
	p := newPointBlock()
	var (
		count          proto.ColUInt64
		sum            proto.ColFloat64
		quantiles      = proto.NewArray[float64](new(proto.ColFloat64))
		quantileValues = proto.NewArray[float64](new(proto.ColFloat64))
	)
	return &block[SummaryRow]{
		input: p.input(
			proto.InputColumn{Name: "count", Data: &count},
			proto.InputColumn{Name: "sum", Data: &sum},
			proto.InputColumn{Name: "quantiles", Data: quantiles},
			proto.InputColumn{Name: "quantile_values", Data: quantileValues}),
		add: func(r *SummaryRow) {
			p.add(&r.Point)
			count.Append(r.Count)
			sum.Append(r.Sum)
			quantiles.Append(r.Quantiles)
			quantileValues.Append(r.QuantileValues)
		},
	}
}
