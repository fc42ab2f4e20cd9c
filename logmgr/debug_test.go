package logmgr

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestDebugRig(t *testing.T) {
	seed := uint64(1795399378668641316)
	iter := uint64(12)
	r := rand.New(rand.NewPCG(seed, iter))
	c := newWALRig(t, seed, openWALSized(4<<10))
	if err := c.open(); err != nil {
		t.Fatal(err)
	}
	for gen := range 6 {
		for range r.IntN(25) {
			what, err := c.step(r)
			rep, _ := InspectWAL(c.fs, walDir, nil)
			var names []string
			for _, s := range rep.Segments {
				names = append(names, fmt.Sprintf("%s(seq%d,%d-%d)", s.Name[12:16], s.Seq, s.FirstEntry, s.LastEntry))
			}
			t.Logf("gen %d: %s -> %v first %d last %d files %v", gen, what, err, c.w.FirstIndex(), c.w.LastIndex(), names)
		}
		if gen == 2 {
			for i, s := range c.states {
				t.Logf("state %d: %v", i, s)
			}
		}
		if r.IntN(2) == 0 {
			t.Logf("crash")
			c.fs.Crash()
		} else {
			t.Logf("torn crash")
			c.fs.CrashTorn(rand.New(rand.NewPCG(seed, iter<<8|uint64(gen))))
		}
		c.recover(fmt.Sprintf("iter %d gen %d", iter, gen))
		if r.IntN(3) == 0 {
			c.carryOn()
		}
	}
}
