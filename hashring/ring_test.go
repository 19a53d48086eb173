package hashring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const nameSets = 4

// names returns n distinct member names drawn from seed; set 0 is the
// address-like names a real cluster would use.
func names(seed uint64, n int) []string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]string, n)
	for i := range out {
		if seed == 0 {
			out[i] = fmt.Sprintf("10.0.%d.%d:8848", i/250, i%250+1)
		} else {
			out[i] = fmt.Sprintf("node-%d-%x", i, rng.Uint64())
		}
	}
	return out
}

func mustNew(t testing.TB, partitions int, members []string) *Ring {
	t.Helper()
	r, err := New(partitions, members)
	if err != nil {
		t.Fatalf("New(%d, %q): %v", partitions, members, err)
	}
	return r
}

func without(members []string, k int) []string {
	return slices.Concat(members[:k], members[k+1:])
}

func TestSameMembersAnyOrderSameOwners(t *testing.T) {
	members := names(1, 9)
	want := mustNew(t, DefaultPartitions, members)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(members)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[rng.IntN(len(shuffled))]) // a duplicate is ignored
		got := mustNew(t, DefaultPartitions, shuffled)
		if got.Version() != want.Version() {
			t.Fatalf("order %q: version %x, want %x", shuffled, got.Version(), want.Version())
		}
		if !slices.Equal(got.Owners(), want.Owners()) {
			t.Fatalf("order %q: owners differ", shuffled)
		}
		if !slices.Equal(got.Members(), want.Members()) {
			t.Fatalf("members %q, want %q", got.Members(), want.Members())
		}
	}
}

func TestBoundedLoad(t *testing.T) {
	const P = DefaultPartitions
	for set := range uint64(nameSets) {
		all := names(set, 64)
		for n := 2; n <= 64; n++ {
			r := mustNew(t, P, all[:n])
			loads := map[string]int{}
			for _, o := range r.Owners() {
				loads[o]++
			}
			bound := 1.25 * float64(P) / float64(n)
			total := 0
			for _, m := range all[:n] {
				if float64(loads[m]) > bound || loads[m] > MaxLoad(P, n) {
					t.Errorf("set %d n=%d: %s owns %d partitions, bound %.1f", set, n, m, loads[m], bound)
				}
				if got := len(r.Owned(m)); got != loads[m] {
					t.Errorf("set %d n=%d: Owned(%s) has %d, Owners says %d", set, n, m, got, loads[m])
				}
				total += loads[m]
			}
			if total != P || len(loads) != n {
				t.Errorf("set %d n=%d: %d partitions owned by %d names, want %d by %d", set, n, total, len(loads), P, n)
			}
		}
	}
}

func TestBoundedLoadSmallRings(t *testing.T) {
	for p := 1; p <= 40; p++ {
		for n := 1; n <= 12; n++ {
			r := mustNew(t, p, names(3, n))
			loads := map[string]int{}
			for q := range p {
				o := r.Owner(q)
				if o == "" {
					t.Fatalf("P=%d n=%d: partition %d has no owner", p, n, q)
				}
				loads[o]++
			}
			for m, l := range loads {
				if l > MaxLoad(p, n) {
					t.Errorf("P=%d n=%d: %s owns %d > MaxLoad %d", p, n, m, l, MaxLoad(p, n))
				}
			}
		}
	}
}

func TestMaxLoad(t *testing.T) {
	for _, c := range []struct{ p, n, want int }{
		{1024, 1, 1280}, {1024, 2, 640}, {1024, 3, 426}, {1024, 64, 20},
		{4, 3, 2}, // floor(1.66)=1 leaves room for 3 of 4: ceil
		{1, 5, 1}, {0, 3, 0}, {3, 0, 0},
	} {
		if got := MaxLoad(c.p, c.n); got != c.want {
			t.Errorf("MaxLoad(%d, %d) = %d, want %d", c.p, c.n, got, c.want)
		}
	}
}

// moved counts partitions whose owner differs between a and b, leaving out
// those that went to or came from exempt.
func moved(a, b *Ring, exempt string) int {
	n := 0
	for p := range a.Partitions() {
		if oa, ob := a.Owner(p), b.Owner(p); oa != ob && oa != exempt && ob != exempt {
			n++
		}
	}
	return n
}

func TestJoinMovesOnlyToNewcomerPlusTenPercent(t *testing.T) {
	const P = DefaultPartitions
	limit := P / 10
	worst := map[int]int{}
	for set := range uint64(nameSets) {
		all := names(set, 64)
		for n := 2; n <= 64; n++ {
			before, after := mustNew(t, P, all[:n-1]), mustNew(t, P, all[:n])
			extra := moved(before, after, all[n-1])
			worst[n] = max(worst[n], extra)
			if extra > limit {
				t.Errorf("set %d: join to n=%d moved %d partitions besides the newcomer's, limit %d", set, n, extra, limit)
			}
		}
	}
	t.Logf("join, worst extra moves per n over %d name sets: %v", nameSets, worst)
}

func TestLeaveMovesOnlyLeaversPlusTenPercent(t *testing.T) {
	const P = DefaultPartitions
	limit := P / 10
	worst := map[int]int{}
	rng := rand.New(rand.NewPCG(9, 9))
	for set := range uint64(nameSets) {
		all := names(set, 64)
		for n := 2; n <= 64; n++ {
			before := mustNew(t, P, all[:n])
			for _, k := range []int{0, n - 1, rng.IntN(n)} {
				after := mustNew(t, P, without(all[:n], k))
				extra := moved(before, after, all[k])
				worst[n] = max(worst[n], extra)
				if extra > limit {
					t.Errorf("set %d: %s leaving n=%d moved %d partitions besides its own, limit %d", set, all[k], n, extra, limit)
				}
			}
		}
	}
	t.Logf("leave, worst extra moves per n over %d name sets: %v", nameSets, worst)
}

func TestVersionChangesIffMemberSetChanges(t *testing.T) {
	base := []string{"a", "b", "c"}
	same := [][]string{{"c", "b", "a"}, {"b", "a", "c", "a"}, {"a", "b", "c", "c", "b"}}
	differ := [][]string{{"a", "b"}, {"a", "b", "c", "d"}, {"a", "b", "x"}, {"a", "bc"}, {"a\x00b", "c"}, {"ab", "c"}}
	v := VersionOf(base)
	if r := mustNew(t, 8, base); r.Version() != v {
		t.Fatalf("ring version %x, VersionOf %x", r.Version(), v)
	}
	for _, m := range same {
		if VersionOf(m) != v || mustNew(t, 8, m).Version() != v {
			t.Errorf("%q: version changed for the same member set", m)
		}
	}
	seen := map[uint64][]string{v: base}
	for _, m := range differ {
		got := mustNew(t, 8, m).Version()
		if prev, dup := seen[got]; dup {
			t.Errorf("%q and %q share version %x", m, prev, got)
		}
		seen[got] = m
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	for _, c := range []struct {
		name       string
		partitions int
		members    []string
		is         error
	}{
		{"zero partitions", 0, []string{"a"}, nil},
		{"negative partitions", -3, []string{"a"}, nil},
		{"too many partitions", 1<<24 + 1, []string{"a"}, nil},
		{"nil members", 8, nil, ErrNoMembers},
		{"no members", 8, []string{}, ErrNoMembers},
		{"empty name", 8, []string{""}, nil},
		{"empty name among others", 8, []string{"a", "", "b"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(c.partitions, c.members)
			if err == nil || r != nil {
				t.Fatalf("New(%d, %q) = %v, %v; want nil ring and an error", c.partitions, c.members, r, err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
		})
	}
}

func TestNilRingIsEmptyNotPanic(t *testing.T) {
	var r *Ring
	if r.Partitions() != 0 || r.Version() != 0 || r.Members() != nil || r.Partition("k") != 0 {
		t.Fatal("nil ring reports partitions, version, members or a partition")
	}
	if r.Owner(0) != "" || r.OwnerOf("k") != "" || r.Owners() != nil || r.Owned("a") != nil {
		t.Fatal("nil ring reports an owner")
	}
	if r.Diff(nil, "a") != nil {
		t.Fatal("nil ring reports gained partitions")
	}
	if PartitionOf("k", 0) != 0 || PartitionOf("k", -1) != 0 {
		t.Fatal("PartitionOf with no partitions is not 0")
	}
}

func TestOwnerOutOfRangeIsEmpty(t *testing.T) {
	r := mustNew(t, 16, []string{"a", "b"})
	for _, p := range []int{-1, 16, 1 << 40} {
		if o := r.Owner(p); o != "" {
			t.Errorf("Owner(%d) = %q, want \"\"", p, o)
		}
	}
	if r.Owned("stranger") != nil {
		t.Error("a non-member owns partitions")
	}
}

func TestOwnerOfIsOwnerOfPartition(t *testing.T) {
	r := mustNew(t, DefaultPartitions, names(0, 5))
	for i := range 200 {
		key := fmt.Sprintf("public##DEFAULT_GROUP@@svc-%d", i)
		p := r.Partition(key)
		if p != PartitionOf(key, DefaultPartitions) || p < 0 || p >= DefaultPartitions {
			t.Fatalf("Partition(%q) = %d", key, p)
		}
		if r.OwnerOf(key) != r.Owner(p) || r.OwnerOf(key) == "" {
			t.Fatalf("OwnerOf(%q) = %q, Owner(%d) = %q", key, r.OwnerOf(key), p, r.Owner(p))
		}
	}
}

// table is a weigher whose values can be read off: weights[member][p], and
// partitions assigned in ascending order.
func table(weights map[string][]uint64) *weigher {
	return &weigher{
		weight: func(m string, p int) uint64 { return weights[m][p] },
		order:  func(p int) uint64 { return uint64(p) },
	}
}

func mustBuild(t *testing.T, partitions int, members []string, w *weigher) *Ring {
	t.Helper()
	r, err := build(partitions, members, w)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return r
}

func TestSmallRingReadable(t *testing.T) {
	t.Run("each partition goes to its heaviest member", func(t *testing.T) {
		w := table(map[string][]uint64{
			//   p0 p1 p2 p3 p4 p5
			"a": {9, 1, 1, 9, 1, 1},
			"b": {1, 9, 1, 1, 9, 1},
			"c": {1, 1, 9, 1, 1, 9},
		})
		got := mustBuild(t, 6, []string{"c", "a", "b"}, w).Owners()
		if want := []string{"a", "b", "c", "a", "b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("owners %q, want %q", got, want)
		}
	})
	t.Run("a full member passes the rest to the next heaviest", func(t *testing.T) {
		// 6 partitions over 2 members: MaxLoad = floor(1.25*3) = 3. Everyone
		// prefers a; a fills on p0..p2, so p3..p5 go to b.
		w := table(map[string][]uint64{
			"a": {9, 9, 9, 9, 9, 9},
			"b": {1, 1, 1, 1, 1, 1},
		})
		got := mustBuild(t, 6, []string{"a", "b"}, w).Owners()
		if want := []string{"a", "a", "a", "b", "b", "b"}; !slices.Equal(got, want) {
			t.Fatalf("owners %q, want %q", got, want)
		}
	})
	t.Run("equal weights go to the lower name", func(t *testing.T) {
		w := table(map[string][]uint64{"a": {5, 5}, "b": {5, 5}})
		got := mustBuild(t, 2, []string{"b", "a"}, w).Owners()
		if want := []string{"a", "b"}; !slices.Equal(got, want) { // MaxLoad(2,2) = 1
			t.Fatalf("owners %q, want %q", got, want)
		}
	})
	t.Run("a join takes only what the newcomer wins", func(t *testing.T) {
		w := table(map[string][]uint64{
			//   p0 p1 p2 p3 p4 p5 p6 p7
			"a": {8, 2, 8, 2, 8, 2, 8, 2},
			"b": {2, 8, 2, 8, 2, 8, 2, 8},
			"c": {1, 1, 9, 1, 1, 9, 1, 1},
		})
		before := mustBuild(t, 8, []string{"a", "b"}, w)
		after := mustBuild(t, 8, []string{"a", "b", "c"}, w)
		if want := []string{"a", "b", "a", "b", "a", "b", "a", "b"}; !slices.Equal(before.Owners(), want) {
			t.Fatalf("before: owners %q, want %q", before.Owners(), want)
		}
		if want := []string{"a", "b", "c", "b", "a", "c", "a", "b"}; !slices.Equal(after.Owners(), want) {
			t.Fatalf("after: owners %q, want %q", after.Owners(), want)
		}
		if got := after.Diff(before, "c"); !slices.Equal(got, []int{2, 5}) {
			t.Fatalf("c gained %v, want [2 5]", got)
		}
	})
}

func TestDiff(t *testing.T) {
	all := names(2, 6)
	before := mustNew(t, DefaultPartitions, all[:5])
	after := mustNew(t, DefaultPartitions, all)
	newcomer := all[5]

	if got, want := after.Diff(nil, newcomer), after.Owned(newcomer); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("Diff(nil) = %d partitions, want all %d owned", len(got), len(want))
	}
	if got := after.Diff(before, newcomer); !slices.Equal(got, after.Owned(newcomer)) {
		t.Fatalf("newcomer gained %v, want everything it owns", got)
	}
	if got := after.Diff(after, all[0]); len(got) != 0 {
		t.Fatalf("Diff against itself = %v, want none", got)
	}
	if got := after.Diff(before, "stranger"); got != nil {
		t.Fatalf("non-member gained %v", got)
	}
	for _, m := range all[:5] {
		gained := after.Diff(before, m)
		if !slices.IsSorted(gained) {
			t.Fatalf("%s gained %v, not ascending", m, gained)
		}
		for _, p := range gained {
			if after.Owner(p) != m || before.Owner(p) == m {
				t.Fatalf("%s: partition %d listed as gained: before %q, after %q", m, p, before.Owner(p), after.Owner(p))
			}
		}
		// Every partition m owns now is either kept or gained.
		kept := 0
		for _, p := range after.Owned(m) {
			if before.Owner(p) == m {
				kept++
			}
		}
		if kept+len(gained) != len(after.Owned(m)) {
			t.Fatalf("%s: kept %d + gained %d != owned %d", m, kept, len(gained), len(after.Owned(m)))
		}
	}
	// Leaving: the survivors gain exactly what the leaver owned plus any reshuffle.
	leaverOwned := before.Owned(all[4])
	shrunk := mustNew(t, DefaultPartitions, all[:4])
	gainedTotal := 0
	for _, m := range all[:4] {
		gainedTotal += len(shrunk.Diff(before, m))
	}
	if gainedTotal < len(leaverOwned) || gainedTotal > len(leaverOwned)+DefaultPartitions/10 {
		t.Fatalf("survivors gained %d partitions, leaver owned %d", gainedTotal, len(leaverOwned))
	}
}

func TestSingleMemberOwnsEverything(t *testing.T) {
	r := mustNew(t, DefaultPartitions, []string{"solo"})
	if got := len(r.Owned("solo")); got != DefaultPartitions {
		t.Fatalf("solo owns %d of %d", got, DefaultPartitions)
	}
}

var sinkOwner string

func BenchmarkOwnerOf(b *testing.B) {
	r := mustNew(b, DefaultPartitions, names(0, 16))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("public##DEFAULT_GROUP@@svc-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkOwner = r.OwnerOf(keys[i%len(keys)])
		i++
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{3, 16, 64} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			members := names(0, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(DefaultPartitions, members); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
