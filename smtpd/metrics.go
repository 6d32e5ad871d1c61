package smtpd

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/ingest"
)

// Metrics are the SMTP side's Prometheus collectors. A nil *Metrics records
// nothing.
type Metrics struct {
	messages *prometheus.CounterVec
	bytes    prometheus.Counter
	stages   *prometheus.HistogramVec
	keyCalls *prometheus.CounterVec
	keyErrs  *prometheus.CounterVec
	stageErr *prometheus.CounterVec
	sessions prometheus.Gauge
	refused  *prometheus.CounterVec
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_messages_total", Help: "Messages by outcome (archived, duplicate, tempfail, rejected).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailvaultd_message_bytes_total", Help: "Bytes of messages archived.",
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mailvaultd_stage_duration_seconds", Help: "Duration of each delivery stage.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"stage"}),
		keyCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_key_service_calls_total", Help: "Calls to the key provider.",
		}, []string{"op"}),
		keyErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_key_service_errors_total", Help: "Failed calls to the key provider.",
		}, []string{"op"}),
		stageErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_stage_errors_total", Help: "Failed deliveries by the stage that failed (store, keys, forward, read, internal).",
		}, []string{"stage"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailvaultd_smtp_sessions_in_flight", Help: "Open SMTP sessions.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_smtp_connections_refused_total", Help: "SMTP connections refused at the greeting (not_authorised: outside smtp.allow; too_many_sessions: over smtp.max_sessions).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.messages, m.bytes, m.stages, m.keyCalls, m.keyErrs, m.stageErr, m.sessions, m.refused)
	return m
}

func (m *Metrics) keyCall(op string, failed bool) {
	if m == nil {
		return
	}
	m.keyCalls.WithLabelValues(op).Inc()
	if failed {
		m.keyErrs.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) delivered(res ingest.Result, result, failedStage string) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(result).Inc()
	if result == "archived" || result == "duplicate" {
		m.bytes.Add(float64(res.Size))
	}
	for s, d := range res.Stages {
		m.stages.WithLabelValues(s).Observe(d.Seconds())
	}
	if failedStage != "" {
		m.stageErr.WithLabelValues(failedStage).Inc()
	}
}

func (m *Metrics) sessionDelta(d float64) {
	if m != nil {
		m.sessions.Add(d)
	}
}

func (m *Metrics) connectionRefused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func durAttr(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
