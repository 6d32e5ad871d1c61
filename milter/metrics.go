package milter

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/ingest"
)

// Metrics are the milter side's Prometheus collectors, apart from the SMTP
// side's so that an operator running both sees which front end mail came
// through. A nil *Metrics records nothing.
type Metrics struct {
	messages *prometheus.CounterVec
	bytes    prometheus.Counter
	duration prometheus.Histogram
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailvaultd_milter_messages_total", Help: "Messages seen by the milter, by outcome (archived, duplicate, tempfail, rejected).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailvaultd_milter_message_bytes_total", Help: "Bytes of messages archived through the milter.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mailvaultd_milter_delivery_duration_seconds", Help: "From the first header to the core's answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}),
	}
	reg.MustRegister(m.messages, m.bytes, m.duration)
	return m
}

func (m *Metrics) observe(res ingest.Result, err error, took time.Duration) {
	if m == nil {
		return
	}
	outcome := "archived"
	var ie *ingest.Error
	switch {
	case err != nil && errors.As(err, &ie) && !ie.Temporary:
		outcome = "rejected"
	case err != nil:
		outcome = "tempfail"
	case res.Duplicate:
		outcome = "duplicate"
	}
	m.messages.WithLabelValues(outcome).Inc()
	if err == nil {
		m.bytes.Add(float64(res.Size))
	}
	m.duration.Observe(took.Seconds())
}
