"""ROS 2 bags without ROS: read recordings, write Humble-playable bags, replay the fusion over a
recording (``sgdfuse replay``) and make test bags from image pairs (``sgdfuse make-bag``).

Modules: :mod:`.reader` (open bags, find camera topics), :mod:`.writer` (write bags),
:mod:`.replay` and :mod:`.make_bag` (the two subcommands), :mod:`.report` (replay report).
"""
