package membership

import (
	"strings"
	"time"
)

// joinLoop joins cfg.Join, retrying with exponential backoff between
// JoinRetryMin and JoinRetryMax until a join succeeds or Shutdown; the node
// gossips alone meanwhile.
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	wait := m.cfg.JoinRetryMin
	for attempt := 1; ; attempt++ {
		n, err := m.ml.Join(m.cfg.Join)
		m.joinAttempts.Add(1)
		if err == nil {
			m.log.Info("joined cluster", "addrs", m.cfg.Join, "contacted", n, "attempts", attempt)
			return
		}
		select {
		case <-m.stopCh:
			return
		default:
		}
		m.log.Warn("join failed, running alone until a retry succeeds", "addrs", m.cfg.Join,
			"attempt", attempt, "retry_in", wait, "err", oneLine(err))
		t := time.NewTimer(wait)
		select {
		case <-m.stopCh:
			t.Stop()
			return
		case <-t.C:
		}
		wait = nextBackoff(wait, m.cfg.JoinRetryMax)
	}
}

// nextBackoff doubles wait, capped at max.
func nextBackoff(wait, max time.Duration) time.Duration {
	if wait >= max/2 {
		return max
	}
	return 2 * wait
}

// oneLine flattens memberlist's multi-line multierror text for a log attribute.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
