"""The live document of a session and who is connected to it.

``room`` (members, holds, the one place changes pass through), ``yjs`` (y-websocket sync and
awareness), ``text_sync`` (the JSON protocol's whole texts and versions, and its events),
``watch`` (runs and input requests as participants see them), ``persistence`` (the update log,
compaction, the code column) and ``registry`` (loading and unloading rooms). ``presence`` says
what an awareness state may hold before ``yjs`` keeps and relays it.
"""
