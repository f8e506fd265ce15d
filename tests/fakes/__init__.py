"""In-memory fakes of every context's ports, for unit tests without a database: one module per
context, the pieces they share in :mod:`.common`.

They keep the promises of the real adapters that the handlers rely on:

- a unit of work sees its own changes at once, everyone else only after ``commit``;
  leaving it without a commit drops them (the real one rolls back on exit);
- after a commit, the events recorded by the aggregates it saw (added or saved) go to a
  :class:`RecordingPublisher`, never before and never after a failed commit;
- a read-only unit of work (``write=False``) refuses writes and commits;
- stock moves check and change in one step under a lock, like the conditional UPDATEs;
- everything stored or handed out is a copy, as rows read back from a database would be.

``store.before_commit`` lets a test make a commit fail; the stores are the unit-of-work
factories the handlers take (``handler = SomeHandler(uow=store)``).
"""
