package snapshot

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Throttle caps the rate at which a host serves snapshot bytes, across
// all the groups on it: build one per host and hand it to every copy
// actor's CopyConfig. It is a token bucket: tokens accrue at the rate,
// up to the burst, and serving n bytes takes n tokens.
//
// Reserve never blocks. It takes the tokens at once, going into debt if
// there are not enough, and says how long the caller must wait before
// sending: a copy actor arms a timer for that long (env.After) and serves
// the chunk when it fires. Debts add up, so concurrent transfers queue
// behind each other and together get the rate, each about its share.
//
// Time is an input: Reserve takes the caller's Now (env.Now, the
// simulator's virtual clock in tests). A Throttle never reads a clock of
// its own. Callers on one host share one clock; a Now earlier than one
// seen before counts as no time passed.
//
// A Throttle is safe for concurrent use (copy actors run on goroutines of
// their own in production).
type Throttle struct {
	rate  float64 // bytes per second; 0: unlimited
	burst float64

	mu     sync.Mutex
	tokens float64   // may be negative: reserved ahead of time
	last   time.Time // when tokens was last brought up to date
}

// NewThrottle returns a throttle of bytesPerSecond (0: unlimited) that
// lets burst bytes go without waiting after an idle period (0: one
// DefaultMaxChunkSize chunk).
func NewThrottle(bytesPerSecond, burst int64) (*Throttle, error) {
	if bytesPerSecond < 0 || burst < 0 {
		return nil, fmt.Errorf("snapshot: NewThrottle(%d, %d): the rate and the burst must not be negative", bytesPerSecond, burst)
	}
	if burst == 0 {
		burst = DefaultMaxChunkSize
	}
	return &Throttle{rate: float64(bytesPerSecond), burst: float64(burst), tokens: float64(burst)}, nil
}

// Reserve takes n bytes' worth of tokens at now and returns how long to
// wait before sending them (0: at once). A nil Throttle, or one of rate 0,
// never makes anyone wait.
func (t *Throttle) Reserve(now time.Time, n int) time.Duration {
	if t == nil || t.rate == 0 || n <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last.IsZero() {
		t.last = now
	}
	if d := now.Sub(t.last); d > 0 {
		t.tokens = math.Min(t.burst, t.tokens+d.Seconds()*t.rate)
		t.last = now
	}
	t.tokens -= float64(n)
	if t.tokens >= 0 {
		return 0
	}
	// Round up: a chunk never leaves before its tokens have accrued.
	return time.Duration(math.Ceil(-t.tokens / t.rate * float64(time.Second)))
}

// Rate is the throttle's rate in bytes per second (0: unlimited).
func (t *Throttle) Rate() int64 {
	if t == nil {
		return 0
	}
	return int64(t.rate)
}
