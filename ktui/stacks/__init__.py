"""Stack data shaped for viewing: folding stacks into a flame tree and laying it out in cells.

The flame view (ktui/widgets/flame.py) and the differential flame graph of ``ktui diff``
both draw from ``ktui.stacks.flame``; nothing here knows about a terminal.
"""
