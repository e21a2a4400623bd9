"""The prepared CUDA check (`bash benchmarks/gpu/run.sh OUTDIR`): trainings, resume, multi-GPU, speed."""
