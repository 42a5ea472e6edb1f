"""Protocol numbers (registro numérico): issuing, storing, looking up."""
