//go:build race

package proxy

// raceDetector is set when the tests run with -race, which makes the
// longest protocol loops several times slower.
const raceDetector = true
