package server

import (
	"sync"
	"time"
)

// limiter is a token bucket per API token: rate requests per second, with
// bursts of twice that.
type limiter struct {
	rate float64
	now  func() time.Time
	mu   sync.Mutex
	b    map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, now: now, b: map[string]*bucket{}}
}

// allow takes one request from key's bucket, or reports false when empty.
func (l *limiter) allow(key string) bool {
	if l.rate <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b[key]
	if b == nil {
		if len(l.b) > 100_000 { // forget idle buckets rather than grow forever
			clear(l.b)
		}
		b = &bucket{tokens: 2 * l.rate, last: now}
		l.b[key] = b
	}
	b.tokens = min(2*l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
