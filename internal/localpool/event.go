package localpool

// Event reports the state of one child: it went up (accepts connections at
// Addr) or down (its process ended). Status returns the latest Event of every
// child; before a child's first Up it is down with PID 0.
type Event struct {
	// Child is the child's index, 0 to Count-1; it never changes for a slot,
	// even when a restart has to move the child to another port.
	Child int
	// Addr is "127.0.0.1:port": where the child listens when Up, where it
	// listened when down.
	Addr string
	// Up is true when the child accepts TCP connections.
	Up bool
	// PID is the process id of the child that went up or down.
	PID int
	// Restarts counts the processes started for this slot after its first,
	// failed attempts included, so a consumer that saw Up twice in a row
	// with different Restarts knows the child went down in between.
	Restarts int
	// Err says why the child went down: its exit status. Nil when Up.
	Err error
}

// publish records ev as the latest state of its child and wakes the event
// goroutine. It never blocks: events for one child that the consumer has not
// taken yet are replaced by the newest, so the queue is bounded by Count and
// a slow consumer never delays a restart.
func (p *Pool) publish(ev Event) {
	p.mu.Lock()
	p.state[ev.Child] = ev
	p.dirty[ev.Child] = true
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// takeDirty returns the latest event of the next child, in round-robin
// order, whose state changed since it was last delivered.
func (p *Pool) takeDirty() (Event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.dirty)
	for k := range n {
		i := (p.cursor + k) % n
		if p.dirty[i] {
			p.dirty[i] = false
			p.cursor = (i + 1) % n
			return p.state[i], true
		}
	}
	return Event{}, false
}

// deliverEvents is the pool goroutine that feeds the Events channel. It
// closes the channel when the pool closes.
func (p *Pool) deliverEvents() {
	defer p.background.Done()
	defer close(p.events)
	for {
		select {
		case <-p.notify:
		case <-p.done:
			return
		}
		for {
			ev, ok := p.takeDirty()
			if !ok {
				break
			}
			select {
			case p.events <- ev:
			case <-p.done:
				return
			}
		}
	}
}
