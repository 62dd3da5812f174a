package loadgen

// The turn shape the bench asks of its fake CLI servers: about 30
// session.event notifications per turn, most of them small streaming deltas,
// a few tool-output-sized ones and one conversation snapshot of 40 KiB, as a
// real CLI turn brings. About 85 KiB of events per turn.
const DefaultEventsPerTurn = 30

// DefaultEventSizes are the lengths of the 24 assistant.message_delta bodies
// of a turn (the other six events are the fixed small ones), from 0.3 KiB to
// 40 KiB, median about 0.5 KiB.
var DefaultEventSizes = []int{
	300, 350, 400, 450, 500, 600, 700, 800, 300, 400, 500, 1024,
	300, 400, 600, 2048, 300, 500, 4096, 800, 8192, 1200, 16384, 40960,
}
