package node

// What the log view keeps in memory.

// trimLog lets the log drop cached entries that are applied and durable,
// keeping those a lagging follower still needs (up to a bound); and, when
// the cache holds more than MaxLogCacheBytes, the oldest committed and
// durable entries even if not applied yet: the FSM caller and the
// replicators read those from storage.
func (a *Actor) trimLog() {
	const keepForFollowers = 1 << 16
	upTo := min(a.applied, a.stable)
	if a.role == Leader {
		floor := uint64(0)
		if a.applied > keepForFollowers {
			floor = a.applied - keepForFollowers
		}
		upTo = a.tr.minMatch(upTo, floor)
	}
	a.log.Trim(upTo)
	a.log.Spill(min(a.commit, a.stable), a.cfg.MaxLogCacheBytes)
}
