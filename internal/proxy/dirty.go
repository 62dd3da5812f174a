package proxy

// dirtySet lists, once each and in order, the connections a reader wrote
// to without flushing, so it flushes each once when it has nothing more at
// hand (a client's reader: its upstreams; a shared upstream's reader: its
// clients). Owned by that reader.
type dirtySet[T comparable] struct {
	items []T
}

// add notes x, once.
func (d *dirtySet[T]) add(x T) {
	for _, y := range d.items {
		if y == x {
			return
		}
	}
	d.items = append(d.items, x)
}

// len reports how many are noted.
func (d *dirtySet[T]) len() int { return len(d.items) }

// drain calls flush for each noted one, in order, and empties the set.
func (d *dirtySet[T]) drain(flush func(T)) {
	var zero T
	for i, x := range d.items {
		flush(x)
		d.items[i] = zero
	}
	d.items = d.items[:0]
}
