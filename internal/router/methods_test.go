package router

import "testing"

func TestLookupClasses(t *testing.T) {
	tests := []struct {
		method     string
		hasSession bool
		want       Route
	}{
		{"connect", false, Route{Class: ClassLocal}},
		{"ping", false, Route{Class: ClassQuery}},
		{"status.get", false, Route{Class: ClassQuery}},
		{"models.list", false, Route{Class: ClassQuery}},
		{"session.list", false, Route{Class: ClassAggregate, Merge: MergeSessionList}},
		{"session.getLastId", false, Route{Class: ClassAggregate, Merge: MergeLastID}},
		{"sessions.findByPrefix", false, Route{Class: ClassAggregate, Merge: MergeUnion}},
		{"sessionFs.setProvider", false, Route{Class: ClassRegistration}},
		{"llmInference.setProvider", false, Route{Class: ClassRegistration}},
		{"registerExtensionLaunchProvider", false, Route{Class: ClassRegistration}},
		{"plugins.builtin.set", false, Route{Class: ClassRegistration}},
		{"user.settings.set", false, Route{Class: ClassGlobalWrite}},
		{"mcp.config.add", false, Route{Class: ClassGlobalWrite}},
		// Session-scoped methods, known or not, follow the session.
		{"session.send", true, Route{Class: ClassSession}},
		{"session.create", true, Route{Class: ClassSession}},
		{"session.future.method", true, Route{Class: ClassSession}},
		// A query about a session goes where the session lives.
		{"tools.list", true, Route{Class: ClassSession}},
		// Unknown without a session: one backend.
		{"something.new", false, Route{Class: ClassQuery}},
	}
	for _, tt := range tests {
		if got := Lookup([]byte(tt.method), tt.hasSession); got != tt.want {
			t.Errorf("Lookup(%q, %v) = %+v, want %+v", tt.method, tt.hasSession, got, tt.want)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	m := []byte("session.send")
	if n := testing.AllocsPerRun(100, func() { Lookup(m, true) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}
