//go:build !race

package openpgp

const raceEnabled = false
