# bench_plot.gp - the chart of scripts/bench.sh: throughput bars and the
# latency percentile curves at half load, side by side in one PNG.
#
# gnuplot -e "bars='B'; lat='L'; lat_fwd='F'; lat_sync='S'; out='X.png'; title='T'" \
#         perf/bench_plot.gp
#   bars      "label" value_per_s, one row per bar (NaN: not measured)
#   lat       engine at half load: percentile  1/(1-percentile)  latency_us
#   lat_fwd   forward path at the same rate (same columns; optional)
#   lat_sync  sync ack at half of its own peak (same columns; optional)
# Lines starting with # are comments. Every figure comes from the data
# files: nothing is computed here beyond the labels' formatting.

if (!exists("bars") || !exists("lat") || !exists("out")) {
	print "bench_plot.gp: give bars, lat and out with -e (see the header)"
	exit status 2
}
if (!exists("lat_fwd")) lat_fwd = ""
if (!exists("lat_sync")) lat_sync = ""
if (!exists("title")) title = "authd bench"

# Data rows of a file (0 when it is missing or has only comments).
rows(f) = (strlen(f) == 0) ? 0 : \
	int(system(sprintf("grep -v '^#' '%s' 2>/dev/null | grep -c . || true", f)))

set terminal pngcairo size 1400,600 enhanced font "DejaVu Sans,10"
set output out
set multiplot layout 1,2 title title font ",12"

# ---- left: what each contender does per second ----------------------------
# A log scale: the forward path and Redis are orders of magnitude apart.
set title "Throughput (records, decisions or Redis ops per second)"
set style fill solid 0.7 border -1
set boxwidth 0.6
unset key
set grid ytics
set xtics nomirror scale 0
set ytics nomirror
set xrange [-0.6:*]
if (rows(bars) > 0) {
	stats bars using 2 nooutput
	set logscale y 10
	set format y "10^{%L}"
	set yrange [10 ** floor(log10(STATS_min)) : 10 ** ceil(log10(STATS_max) + 0.3)]
	plot bars using 0:2:xtic(1) with boxes lc rgb "#4477aa", \
	     bars using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8
} else {
	set label 1 "no throughput measured" at graph 0.5, 0.5 center
	set yrange [0:1]
	plot 2 notitle
	unset label 1
}

# ---- right: latency percentiles at half of the engine's peak --------------
# x = 1/(1 - p) on a log axis: 50% at 2, 99% at 100, 99.9% at 1000, ...
set title "Latency at half of peak load (authgen: scheduled send to answer)"
unset logscale
set format y "10^{%L}"
set logscale x 10
set logscale y 10
set xrange [1:*]
set yrange [*:*]
set rmargin 6
set xtics ("50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, \
           "99.99%%" 10000, "99.999%%" 100000, "99.9999%%" 1000000) scale 1
set xlabel "percentile"
set ylabel "latency (us)"
set grid xtics ytics
set key bottom right
cmd = ""
if (rows(lat) > 0) {
	cmd = "lat using 2:3 with steps lw 2 lc rgb '#cc3311' title 'engine, async ack'"
}
if (rows(lat_fwd) > 0) {
	cmd = cmd . (strlen(cmd) ? ", " : "") . \
	      "lat_fwd using 2:3 with steps lw 1 dt 2 lc rgb '#4477aa' title 'forward path, same rate'"
}
if (rows(lat_sync) > 0) {
	cmd = cmd . (strlen(cmd) ? ", " : "") . \
	      "lat_sync using 2:3 with steps lw 1 lc rgb '#228833' title 'engine, sync ack, half its own peak'"
}
if (strlen(cmd) > 0) {
	eval("plot " . cmd)
} else {
	unset logscale
	set xrange [0:1]
	set yrange [0:1]
	set xtics auto
	set label 2 "no latency measured" at graph 0.5, 0.5 center
	plot 2 notitle
}

unset multiplot
