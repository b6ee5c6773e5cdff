"""The desktop window: all Qt code of emoapp lives in this package, and only here.

Nothing outside ``emoapp/ui`` imports PySide6; ``emoapp/commands/gui.py`` imports this
package inside ``run()`` so that ``emoapp --help`` never loads Qt. Widgets subscribe to
the live session through :class:`emoapp.ui.bridge.SessionBridge` and draw; they compute
nothing that the core or the session does not already provide.
"""

from emoapp.ui.qtcompat import guard_singleton_refcounts

guard_singleton_refcounts()
