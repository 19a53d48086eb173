package distro

// Store holds the datums of one node. The daemon supplies the real one; tests
// use MemStore. Implementations must be safe for concurrent use.
type Store interface {
	// Get returns the datum for key, tombstones included.
	Get(key string) (Datum, bool)
	// Apply merges d into the store and reports whether the stored datum
	// changed. An older version never overwrites a newer one; a tombstone is
	// kept (see Sweep) so a late push of an older version cannot resurrect it.
	// A store may merge values (the result's version is the max of both).
	Apply(d Datum) (changed bool)
	// Range calls fn for every datum, tombstones included, until fn returns false.
	Range(fn func(Datum) bool)
	// Sweep forgets tombstones whose version is older than before.
	Sweep(before uint64) (removed int)
}
