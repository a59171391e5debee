package monitor

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
)

type shadowJob struct {
	model   string
	version int64 // the shadow version
	task    string
	req     *oip.InferRequest
	primary []oip.Tensor
	// from is the primary version that answered (its signature reads
	// the primary outputs).
	from *versions.Version
	// bytes is what the job counts against ShadowQueueBytes.
	bytes int64
}

// jobBytes is the size of a shadow copy: the raw size of the tensors it
// keeps (the request's inputs and the primary's outputs).
func jobBytes(req *oip.InferRequest, primary []oip.Tensor) int64 {
	var n int64
	for _, t := range req.Inputs {
		n += int64(oip.RawSize(t.Data))
	}
	for _, t := range primary {
		n += int64(oip.RawSize(t.Data))
	}
	return n
}

// shadowStats accumulates the comparison of a shadow version with the
// primary: agreement (classification) and mean absolute difference
// (regression), since the shadow started.
type shadowStats struct {
	mu       sync.Mutex
	n, agree int64
	absSum   float64
	nAbs     int64
}

func (s *shadowStats) add(agree bool, hasAgree bool, abs float64, hasAbs bool) (float64, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasAgree {
		s.n++
		if agree {
			s.agree++
		}
	}
	if hasAbs {
		s.nAbs++
		s.absSum += abs
	}
	return s.valuesLocked()
}

func (s *shadowStats) valuesLocked() (float64, float64) {
	agree, mad := math.NaN(), math.NaN()
	if s.n > 0 {
		agree = float64(s.agree) / float64(s.n)
	}
	if s.nAbs > 0 {
		mad = s.absSum / float64(s.nAbs)
	}
	return agree, mad
}

func (s *shadowStats) values() (float64, float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, m := s.valuesLocked()
	return a, m, s.n > 0 || s.nAbs > 0
}

// maybeShadow queues a copy of the request for version shadow (0: none;
// which requests are copied where is package route's decision). Never
// blocks: a queue that is full, in count (shadow_queue) or in bytes
// (shadow_queue_bytes), drops the copy and counts it.
func (m *Monitor) maybeShadow(v *versions.Version, shadow int64, req *oip.InferRequest, resp *oip.InferResponse) {
	if shadow == 0 {
		return
	}
	job := shadowJob{model: v.Model, version: shadow, task: m.Task(v), req: req, primary: resp.Outputs, from: v, bytes: jobBytes(req, resp.Outputs)}
	if m.shadowBytes.Add(job.bytes) > m.cfg.ShadowQueueBytes {
		m.shadowBytes.Add(-job.bytes)
		m.tel.ShadowDropped(v.Model)
		return
	}
	select {
	case m.shadowQ <- job:
	default:
		m.shadowBytes.Add(-job.bytes)
		m.tel.ShadowDropped(v.Model)
	}
}

// Run runs the shadow copies until ctx is cancelled. One worker, on a
// thread of the lowest priority: shadow traffic must not take CPU from the
// primary path (when the CPU is busy the queue fills and copies are
// dropped and counted instead).
func (m *Monitor) Run(ctx context.Context) error {
	lowerPriority()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-m.shadowQ:
			m.runShadow(ctx, job)
			m.shadowBytes.Add(-job.bytes)
		}
	}
}

func (m *Monitor) runShadow(ctx context.Context, job shadowJob) {
	v, err := m.set.Acquire(job.model, job.version)
	if err != nil {
		return // not loaded (yet): nothing to compare
	}
	defer v.Release()
	names := make([]string, 0, len(job.req.Outputs))
	for _, o := range job.req.Outputs {
		names = append(names, o.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := v.Infer(ctx, job.req.Inputs, names)
	lat := time.Since(start)
	if err != nil {
		m.log.Debug("shadow inference failed", "model", job.model, "version", job.version, "err", err)
		return
	}
	key := key(job.model, strconv.FormatInt(job.version, 10))
	st, _ := m.shadows.LoadOrStore(key, &shadowStats{})
	stats := st.(*shadowStats)
	var agreeShare, mad float64
	switch job.task {
	case manifest.TaskClassification:
		a, _, errA := evaluate.ExtractPredictions(job.task, job.from.Signature, job.primary, evaluate.ExtractOptions{})
		b, _, errB := evaluate.ExtractPredictions(job.task, v.Signature, out, evaluate.ExtractOptions{})
		if errA != nil || errB != nil || len(a) != len(b) {
			return
		}
		for i := range a {
			agreeShare, mad = stats.add(a[i].Class == b[i].Class, true, 0, false)
		}
	default:
		a, _, errA := evaluate.ExtractPredictions(manifest.TaskRegression, job.from.Signature, job.primary, evaluate.ExtractOptions{})
		b, _, errB := evaluate.ExtractPredictions(manifest.TaskRegression, v.Signature, out, evaluate.ExtractOptions{})
		if errA != nil || errB != nil || len(a) != len(b) {
			return
		}
		for i := range a {
			agreeShare, mad = stats.add(false, false, math.Abs(a[i].Value-b[i].Value), true)
		}
	}
	m.tel.RecordShadow(job.model, strconv.FormatInt(job.version, 10), agreeShare, mad, lat)
}
