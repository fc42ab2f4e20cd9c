package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// blockHistory is the shape of swarm seed 21007's key k2: n appends whose
// outcome the clients never learned, all first applied at one instant
// (t=100), a get just before that instant that sees none of them, and a
// get after it that sees them all, in log order (indexes 1..n in call
// order, here reversed so the log order is not the call order).
func blockHistory(n int) []porcupine.Operation {
	var h []porcupine.Operation
	var all strings.Builder
	for i := range n {
		v := fmt.Sprintf("v%d.", i)
		h = append(h, porcupine.Operation{ClientId: i, Input: ordered{kvInput{opAppend, "k", v}, uint64(n - i)}, Output: kvOutput{}, Call: int64(i + 1), Return: 100})
	}
	for i := n - 1; i >= 0; i-- {
		all.WriteString(fmt.Sprintf("v%d.", i))
	}
	h = append(h,
		porcupine.Operation{ClientId: n, Input: ordered{kvInput{opGet, "k", "g1"}, 0}, Output: kvOutput{}, Call: 99, Return: 100},
		porcupine.Operation{ClientId: n, Input: ordered{kvInput{opGet, "k", "g2"}, 0}, Output: kvOutput{Value: all.String()}, Call: 101, Return: 102})
	return h
}

func plain(h []porcupine.Operation) []porcupine.Operation {
	out := make([]porcupine.Operation, len(h))
	for i, op := range h {
		out[i] = op
		out[i].Input = op.Input.(ordered).kvInput
	}
	return out
}

// TestLogOrderedModel: with writes taken in log order the block of
// concurrent writes has one order to try, so the check decides it;
// its verdicts agree with kvModel's where both decide, and a history
// whose writes' real-time order contradicts their log order is refused
// by it (kvModel may still accept it: checkLinearizable then asks it).
func TestLogOrderedModel(t *testing.T) {
	if got := porcupine.CheckOperationsTimeout(kvLogModel, blockHistory(14), time.Minute); got != porcupine.Ok {
		t.Fatalf("a block of 14 concurrent appends in log order: %v, want Ok", got)
	}
	small := blockHistory(5)
	if got := porcupine.CheckOperations(kvModel, plain(small)); !got {
		t.Fatal("kvModel refuses the block of 5 appends")
	}
	wrong := blockHistory(5)
	wrong[len(wrong)-1].Output = kvOutput{Value: "v0.v1.v2.v3.v4."} // the call order, not the log order
	if porcupine.CheckOperations(kvLogModel, wrong) {
		t.Fatal("kvLogModel accepts the appends in an order other than the log's")
	}
	if !porcupine.CheckOperations(kvModel, plain(wrong)) {
		t.Fatal("kvModel refuses a linearizable history")
	}
	bad := blockHistory(5)
	bad[len(bad)-1].Output = kvOutput{Value: "v4.v3.v2.v1."} // one append lost
	if porcupine.CheckOperations(kvLogModel, bad) || porcupine.CheckOperations(kvModel, plain(bad)) {
		t.Fatal("a history that lost an acknowledged append is accepted")
	}
}
