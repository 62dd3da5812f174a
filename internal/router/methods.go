// Package router decides where a JSON-RPC message goes: the class of a
// method without a session, and the backend that owns a session.
package router

// Class says how a request is routed.
type Class uint8

const (
	// ClassSession routes by params.sessionId; it is the default for any
	// method that carries one, known or not.
	ClassSession Class = iota
	// ClassLocal is answered by the proxy itself (the handshake).
	ClassLocal
	// ClassQuery goes to one healthy backend: any of them can answer.
	ClassQuery
	// ClassAggregate is asked of every backend and the answers merged.
	ClassAggregate
	// ClassRegistration claims a whole CLI process for the client (one owner
	// per process): it is sent to every backend the client uses, remembered,
	// and replayed on upstream connections the client opens later.
	ClassRegistration
	// ClassGlobalWrite changes every server's configuration: sent to all.
	ClassGlobalWrite
	// ClassRefused is answered with an error by the proxy.
	ClassRefused
)

func (c Class) String() string {
	switch c {
	case ClassSession:
		return "session"
	case ClassLocal:
		return "local"
	case ClassQuery:
		return "query"
	case ClassAggregate:
		return "aggregate"
	case ClassRegistration:
		return "registration"
	case ClassGlobalWrite:
		return "global-write"
	case ClassRefused:
		return "refused"
	}
	return "unknown"
}

// Merge names how the answers of an aggregate are combined.
type Merge uint8

const (
	MergeNone Merge = iota
	// MergeSessionList: union of session arrays, deduplicated by sessionId
	// (newest copy wins), newest first by modifiedTime.
	MergeSessionList
	// MergeLastID: the most recently modified session across the pool.
	MergeLastID
	// MergeUnion: a structural union (arrays concatenated and deduplicated,
	// objects merged key by key, booleans or-ed).
	MergeUnion
)

// Route is a method's entry in the table.
type Route struct {
	Class Class
	Merge Merge
}

// methods is the table of methods that carry no session ID. A method not in
// it is routed by its sessionId when it has one and otherwise sent to one
// backend (ClassQuery), so new CLI methods keep working.
var methods = map[string]Route{
	"connect": {Class: ClassLocal},

	"ping":                     {Class: ClassQuery},
	"status.get":               {Class: ClassQuery},
	"auth.getStatus":           {Class: ClassQuery},
	"models.list":              {Class: ClassQuery},
	"models.getBuiltInCatalog": {Class: ClassQuery},
	"tools.list":               {Class: ClassQuery},
	"account.getQuota":         {Class: ClassQuery},
	"user.settings.get":        {Class: ClassQuery},
	"mcp.config.list":          {Class: ClassQuery},
	"plugins.list":             {Class: ClassQuery},

	"session.list":                    {Class: ClassAggregate, Merge: MergeSessionList},
	"session.getLastId":               {Class: ClassAggregate, Merge: MergeLastID},
	"sessions.list":                   {Class: ClassAggregate, Merge: MergeUnion},
	"sessions.findByPrefix":           {Class: ClassAggregate, Merge: MergeUnion},
	"sessions.getSizes":               {Class: ClassAggregate, Merge: MergeUnion},
	"sessions.checkInUse":             {Class: ClassAggregate, Merge: MergeUnion},
	"sessions.findByTaskId":           {Class: ClassAggregate, Merge: MergeUnion},
	"sessions.listNonEmptySessionIds": {Class: ClassAggregate, Merge: MergeUnion},

	"sessionFs.setProvider":           {Class: ClassRegistration},
	"llmInference.setProvider":        {Class: ClassRegistration},
	"registerExtensionLaunchProvider": {Class: ClassRegistration},
	"plugins.builtin.set":             {Class: ClassRegistration},

	"user.settings.set":               {Class: ClassGlobalWrite},
	"mcp.config.add":                  {Class: ClassGlobalWrite},
	"mcp.config.update":               {Class: ClassGlobalWrite},
	"mcp.config.remove":               {Class: ClassGlobalWrite},
	"mcp.config.set":                  {Class: ClassGlobalWrite},
	"plugins.install":                 {Class: ClassGlobalWrite},
	"plugins.uninstall":               {Class: ClassGlobalWrite},
	"plugins.enable":                  {Class: ClassGlobalWrite},
	"plugins.disable":                 {Class: ClassGlobalWrite},
	"plugins.update":                  {Class: ClassGlobalWrite},
	"plugins.updateAll":               {Class: ClassGlobalWrite},
	"plugins.marketplaces.add":        {Class: ClassGlobalWrite},
	"plugins.marketplaces.remove":     {Class: ClassGlobalWrite},
	"plugins.marketplaces.refresh":    {Class: ClassGlobalWrite},
	"mcp.config.enable":               {Class: ClassGlobalWrite},
	"mcp.config.disable":              {Class: ClassGlobalWrite},
	"mcp.config.reload":               {Class: ClassGlobalWrite},
	"user.settings.reload":            {Class: ClassGlobalWrite},
	"skills.config.setDisabledSkills": {Class: ClassGlobalWrite},
	"skills.config.setSkillDisabled":  {Class: ClassGlobalWrite},
	"extensions.enable":               {Class: ClassGlobalWrite},
	"extensions.disable":              {Class: ClassGlobalWrite},
	"managedSettings.clearCache":      {Class: ClassGlobalWrite},
	"secrets.addFilterValues":         {Class: ClassGlobalWrite},
	"sessions.pruneOld":               {Class: ClassGlobalWrite},
	"sessions.bulkDelete":             {Class: ClassGlobalWrite},

	// Refused: a client behind the proxy must not stop a shared server.
	"runtime.shutdown": {Class: ClassRefused},
}

// Lookup returns the route of a method. hasSession reports whether the
// message carries params.sessionId: a session-scoped message follows its
// session unless the method is one the table routes otherwise. It does not
// allocate.
func Lookup(method []byte, hasSession bool) Route {
	if r, ok := methods[string(method)]; ok {
		if r.Class == ClassQuery && hasSession {
			// A query about a session is answered where the session lives.
			return Route{Class: ClassSession}
		}
		return r
	}
	if hasSession {
		return Route{Class: ClassSession}
	}
	return Route{Class: ClassQuery}
}
