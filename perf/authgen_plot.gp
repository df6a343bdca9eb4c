# authgen_plot.gp - the figures of `authgen --plot PREFIX`.
#
# authgen writes PREFIX-latency.dat and PREFIX-throughput.dat, then runs
#   gnuplot -e "lat='PREFIX-latency.dat'; thr='PREFIX-throughput.dat'; \
#               out='PREFIX'; subtitle='...'" perf/authgen_plot.gp
# which draws:
#  - PREFIX-latency.png: latency by percentile as HdrHistogram plots it,
#    x = 1 / (1 - q) on a log axis labelled 0%, 90%, 99%, ..., so every
#    "nine" gets the same width and the tail is visible;
#  - PREFIX-throughput.png: per-second samples: offered (open loop: the
#    schedule's mean rate over the second), sent, answered and lost
#    datagrams/s above; decisions/s by status and the p99 of each second
#    below (none during a warm-up: it is not measured).
# Columns: latency.dat  percentile_pct  x=1/(1-q)  latency_us
#          throughput.dat  t_s offered sent answered lost approved declined
#                          error p99_us warm
# The same files can be re-plotted by hand with this script.

if (!exists("lat") || !exists("thr") || !exists("out")) {
	print "usage: gnuplot -e \"lat='L.dat'; thr='T.dat'; out='PREFIX'\" authgen_plot.gp"
	exit status 2
}
if (!exists("subtitle")) subtitle = ""

set terminal pngcairo size 1000,600 noenhanced font ",10"
set output out."-latency.png"
set title "authgen: latency by percentile\n".subtitle
set logscale x
set xrange [1:*]
set xlabel "percentile"
set ylabel "latency (us)"
set xtics ("0%%" 1, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, \
           "99.999%%" 100000, "99.9999%%" 1000000, "99.99999%%" 10000000)
set grid xtics ytics
set key top left
plot lat using 2:3 with fsteps lw 2 title "latency (bucket upper bound)"
unset output

set terminal pngcairo size 1000,800 noenhanced font ",10"
set output out."-throughput.png"
unset logscale
unset xtics
set xtics autofreq
set xrange [*:*]
set grid
unset title
set multiplot layout 2,1 title "authgen: throughput over time\n".subtitle
set ylabel "datagrams/s"
set xlabel ""
set key top left
plot thr using 1:($2 > 0 ? $2 : NaN) with lines lw 1 dt 2 title "offered", \
     thr using 1:3 with linespoints lw 2 pt 7 ps 0.5 title "sent", \
     thr using 1:4 with linespoints lw 2 pt 7 ps 0.5 title "answered", \
     thr using 1:5 with impulses lw 3 title "lost"
set ylabel "decisions/s"
set y2label "p99 of the second (us)"
set y2tics
set ytics nomirror
set xlabel "seconds since start"
plot thr using 1:6 with lines lw 2 title "approved", \
     thr using 1:7 with lines lw 2 title "declined", \
     thr using 1:8 with lines lw 1 title "error", \
     thr using 1:($10 != 0 ? NaN : $9) axes x1y2 with linespoints pt 7 ps 0.5 lw 1 title "p99 (us, right)"
unset multiplot
unset output
