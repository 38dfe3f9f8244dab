"""The downstream animation side: datasets in their processed layouts, per-model recipes, evaluation, rendering."""
