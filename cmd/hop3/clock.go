package main

import (
	"os"
	"strconv"
	"time"

	"hop3/internal/app"
)

// scaledClock runs time faster by a factor, so end-to-end tests can watch a
// cron entry fire every "minute" without waiting minutes. Only tests set
// HOP3_TEST_CLOCK_SCALE; it is not a documented option.
type scaledClock struct {
	start time.Time
	scale float64
}

func (c scaledClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.scale))
}

func (c scaledClock) After(d time.Duration) <-chan time.Time {
	return time.After(time.Duration(float64(d) / c.scale))
}

// testClock returns the scaled clock when HOP3_TEST_CLOCK_SCALE is set.
func testClock() (scaledClock, bool) {
	f, err := strconv.ParseFloat(os.Getenv("HOP3_TEST_CLOCK_SCALE"), 64)
	if err != nil || f <= 0 {
		return scaledClock{}, false
	}
	return scaledClock{start: time.Now(), scale: f}, true
}

// sleepPoll is how often apps are sampled for idleness: app.SleepPoll, or
// HOP3_TEST_SLEEP_POLL (a duration), which only tests set, so that an app
// with a SLEEP_AFTER of seconds sleeps in seconds.
func sleepPoll() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("HOP3_TEST_SLEEP_POLL")); err == nil && d > 0 {
		return d
	}
	return app.SleepPoll
}
