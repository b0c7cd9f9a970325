// Command sample is the test ground's sample service: a small HTTP server with Prometheus metrics whose behaviour
// is set by its environment, so that tests build good and bad versions of one service from one image.
//
//	PORT              listen port (default 8080)
//	VERSION           reported by GET / (default "v1")
//	LATENCY_MS        extra latency of every request to / (default 0)
//	ERROR_RATIO       share of requests to / answered 500, 0..1 (default 0)
//	CRASH_AT_START    "true": exit 1 at once (a CrashLoopBackOff)
//	READY             "false": GET /ready answers 503 (a readiness probe that never passes)
//
// GET / answers {"version","pod","status"}; /healthz is the liveness probe, /ready the readiness probe, /metrics the
// Prometheus text format: http_requests_total{code} and http_request_duration_seconds (histogram).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type metrics struct {
	mu       sync.Mutex
	requests map[int]uint64
	counts   []uint64 // per bucket, not cumulative
	count    uint64
	sum      float64
}

func (m *metrics) observe(code int, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[code]++
	m.count++
	m.sum += seconds
	for i, le := range buckets {
		if seconds <= le {
			m.counts[i]++
			return
		}
	}
}

func (m *metrics) write(w http.ResponseWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# HELP http_requests_total Requests to / by status code.\n# TYPE http_requests_total counter\n")
	codes := make([]int, 0, len(m.requests))
	for c := range m.requests {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "http_requests_total{code=\"%d\"} %d\n", c, m.requests[c])
	}
	b.WriteString("# HELP http_request_duration_seconds Latency of requests to /.\n# TYPE http_request_duration_seconds histogram\n")
	var cumulative uint64
	for i, le := range buckets {
		cumulative += m.counts[i]
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'f', -1, 64), cumulative)
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(&b, "http_request_duration_seconds_sum %g\nhttp_request_duration_seconds_count %d\n", m.sum, m.count)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}

func envFloat(name string, fallback float64) float64 {
	v, err := strconv.ParseFloat(os.Getenv(name), 64)
	if err != nil {
		return fallback
	}
	return v
}

func main() {
	if os.Getenv("CRASH_AT_START") == "true" {
		fmt.Fprintln(os.Stderr, "sample: crashing at start (CRASH_AT_START=true)")
		os.Exit(1)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	version := os.Getenv("VERSION")
	if version == "" {
		version = "v1"
	}
	latency := time.Duration(envFloat("LATENCY_MS", 0)) * time.Millisecond
	errorRatio := envFloat("ERROR_RATIO", 0)
	ready := os.Getenv("READY") != "false"
	pod, _ := os.Hostname()
	m := &metrics{requests: map[int]uint64{}, counts: make([]uint64, len(buckets))}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		time.Sleep(latency)
		code, status := http.StatusOK, "ok"
		if rand.Float64() < errorRatio {
			code, status = http.StatusInternalServerError, "error"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"version": version, "pod": pod, "status": status})
		m.observe(code, time.Since(start).Seconds())
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if !ready {
			http.Error(w, "not ready (READY=false)", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { m.write(w) })

	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}()
	fmt.Printf("sample %s listening on :%s\n", version, port)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "sample:", err)
		os.Exit(1)
	}
}
