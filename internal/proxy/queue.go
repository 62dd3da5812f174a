package proxy

import "sync"

// frameQueue is the bounded queue of frames towards one client. It holds no
// memory while empty (an idle client costs nothing here), grows up to its
// limit, and wakes the client's writer.
type frameQueue struct {
	mu    sync.Mutex
	items []outFrame
	limit int
	ready chan struct{} // 1-buffered: frames were added
	space chan struct{} // 1-buffered: room was made (wakes a blocked sender)
}

func newFrameQueue(limit int) *frameQueue {
	return &frameQueue{limit: limit, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push queues f, blocking while the queue is full, until done is closed.
func (q *frameQueue) push(f outFrame, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if n := len(q.items); n < q.limit {
			q.items = append(q.items, f)
			more := n+1 < q.limit
			q.mu.Unlock()
			signal(q.ready)
			if more {
				signal(q.space) // pass the wake-up on to another blocked sender
			}
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-done:
			return false
		}
	}
}

// take moves every queued frame, in order, onto dst.
func (q *frameQueue) take(dst []outFrame) []outFrame {
	q.mu.Lock()
	dst = append(dst, q.items...)
	clear(q.items)
	if cap(q.items) > 256 {
		q.items = nil // a burst is over: do not keep its memory
	} else {
		q.items = q.items[:0]
	}
	q.mu.Unlock()
	signal(q.space)
	return dst
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
