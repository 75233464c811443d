"""JJava, the Java kernel, as kernelpad runs it."""
