"""The benchmark's driver (`make bench`): pointsbench.bench runs the servers next to the
reference and prints the table; pointsbench.loadgen drives one server (the C generator,
../loadgen.c, or its Python twin). Everything of the benchmark lives under bench/."""
