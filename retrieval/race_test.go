//go:build race

package retrieval

// raceEnabled: the race detector slows JSON decoding several times over and
// maps shadow memory beside the heap, so the memory tests plant fewer
// messages and do not take the process's RSS for the daemon's.
const raceEnabled = true
