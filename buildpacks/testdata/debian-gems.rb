# Packs gems installed by Debian's packages (ruby-rack, ruby-webrick) back
# into .gem files in an app's vendor/cache, as `bundle cache` would have put
# them there, for `bundle install --local` on a machine that reaches no gem
# server. The app's Gemfile.lock is set to the versions Debian ships, which
# a security update may move.
#
#   ruby debian-gems.rb APP_DIR NAME...
require "rubygems/package"
require "fileutils"
require "tmpdir"

# The same gems make the same files, so that an unchanged vendor/cache keys
# the same environment.
ENV["SOURCE_DATE_EPOCH"] ||= "315619200"

app = File.expand_path(ARGV.shift)
out = File.join(app, "vendor", "cache")
FileUtils.mkdir_p(out)
versions = {}
ARGV.each do |name|
  spec = Gem::Specification.find_by_name(name).dup
  versions[name] = spec.version.to_s
  Dir.mktmpdir do |stage|
    FileUtils.cp_r(Dir.glob(File.join(spec.full_gem_path, "*")), stage)
    Dir.chdir(stage) do
      spec.files = Dir.glob("**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }
      Gem::DefaultUserInteraction.use_ui(Gem::SilentUI.new) do
        file = Gem::Package.build(spec)
        FileUtils.mv(file, File.join(out, File.basename(file)))
      end
    end
  end
end

lock = File.join(app, "Gemfile.lock")
if File.exist?(lock)
  text = File.read(lock).gsub(/^    ([a-z0-9_-]+) \([^)]*\)$/) do |line|
    versions.key?($1) ? "    #{$1} (#{versions[$1]})" : line
  end
  File.write(lock, text)
end
